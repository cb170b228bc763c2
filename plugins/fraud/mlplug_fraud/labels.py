"""Turn the many spellings of a binary fraud label into class indices (1 = fraud)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from mlplug.errors import DataError
from mlplug_fraud.columns import CLASSES, FRAUD, LEGIT

FRAUD_LABELS = frozenset(
    {"1", "true", "t", "yes", "y", "fraud", "fraudulent", "positive", "pos", "chargeback", "bad"}
)
LEGIT_LABELS = frozenset(
    {"0", "false", "f", "no", "n", "legit", "legitimate", "genuine", "negative", "neg", "normal",
     "ok", "good"}
)  # fmt: skip


def label_token(value: Any) -> str:
    """A canonical spelling: trimmed, lower case, and ``1.0``/``1``/``True`` all become ``1``."""
    if isinstance(value, bool | np.bool_):
        return "1" if value else "0"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return str(int(value)) if math.isfinite(value) and float(value).is_integer() else str(value)
    text = str(value).strip().lower()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if math.isfinite(number) and number.is_integer() else text


def encode_labels(values: pd.Series, source: str, column: str) -> np.ndarray:
    """Class indices (0 = legit, 1 = fraud) or a ``DataError`` naming ``source`` and ``column``.

    Only the distinct values are inspected, so this stays fast on millions of rows.
    """
    missing = values.isna().to_numpy()
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise DataError(f"{source}: target column {column!r} has a missing label at row {row}")
    distinct = list(pd.unique(values))
    tokens = {value: label_token(value) for value in distinct}
    unknown = [v for v, t in tokens.items() if t not in FRAUD_LABELS and t not in LEGIT_LABELS]
    shown = _show(distinct)
    if unknown:
        if len(distinct) > 2:
            raise DataError(
                f"{source}: target column {column!r} is not binary: found {len(distinct)} distinct "
                f"values {shown}; expected two labels such as 0/1, yes/no, true/false or fraud/legit"
            )
        raise DataError(
            f"{source}: cannot tell which label in target column {column!r} means fraud: found "
            f"{shown}; use 0/1, yes/no, true/false, y/n or fraud/legit"
        )
    mapping = {v: FRAUD if t in FRAUD_LABELS else LEGIT for v, t in tokens.items()}
    codes = values.map(mapping).to_numpy(dtype=np.int64)
    present = set(mapping.values())
    if len(present) < 2:
        (only,) = present
        raise DataError(
            f"{source}: target column {column!r} has a single class: every row is "
            f"{CLASSES[only]!r} (values {shown}); training needs both fraud and legit rows"
        )
    return codes


def _show(values: list[Any], limit: int = 10) -> str:
    ordered = sorted(values, key=lambda v: (str(type(v)), str(v)))
    text = ", ".join(repr(v.item() if isinstance(v, np.generic) else v) for v in ordered[:limit])
    return f"[{text}{', ...' if len(values) > limit else ''}]"
