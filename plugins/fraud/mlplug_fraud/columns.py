"""Column and class conventions shared by the synthetic generator, the loader and the models."""

from __future__ import annotations

#: Class labels in index order: index 1 is the positive class, as mlplug expects.
CLASSES: tuple[str, str] = ("legit", "fraud")
LEGIT, FRAUD = 0, 1

#: Defaults of the loader options and the column names of the synthetic data set.
TARGET = "is_fraud"
ID_COLUMN = "transaction_id"
TIME_COLUMN = "timestamp"
AMOUNT_COLUMN = "amount"

#: ``Schema.extras`` key that names the transaction amount column (used by the cost model).
AMOUNT_EXTRA = "amount_column"
#: ``Schema.extras`` key mapping columns the loader left out of the features to the reason.
IGNORED_EXTRA = "ignored_columns"
