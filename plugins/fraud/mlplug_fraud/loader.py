"""Load any binary-labelled transactions table (csv, parquet, jsonl; path, file:// or s3://).

Column roles are inferred, simply and predictably:

* the target, id and time columns are never features (id and time stay in the frame);
* bool columns, and text columns whose values are all true/false, yes/no, y/n or t/f, are
  ``BOOLEAN``;
* numeric columns are ``NUMERIC``, and so are text columns in which at least 95% of the
  non-missing values parse as numbers: a stray ``"abc"`` in an amount column is then
  reported by :meth:`Schema.validate` with its row instead of silently turning the column
  into a category;
* every other text column is ``CATEGORICAL`` (CatBoost handles it natively), as is any
  column listed in the ``categorical`` option (numeric codes such as merchant category codes);
* columns that are entirely missing, and date/time columns other than the time column, are
  left out; ``Schema.extras["ignored_columns"]`` says which and why.

Integer columns stay numeric whatever their cardinality; list them in ``categorical`` to
treat them as categories.
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from mlplug.dataset import Dataset
from mlplug.errors import DataError
from mlplug.io import read_table
from mlplug.schema import Column, Role, Schema
from mlplug.task import LoadOptions
from mlplug_fraud.columns import AMOUNT_EXTRA, CLASSES, IGNORED_EXTRA, TARGET
from mlplug_fraud.labels import encode_labels

log = logging.getLogger(__name__)

#: Share of non-missing values that must parse as numbers for a text column to be numeric.
NUMERIC_SHARE = 0.95
# The spellings mlplug.schema accepts for a BOOLEAN column.
_BOOLEAN_WORDS = frozenset({"true", "false", "yes", "no", "y", "n", "t", "f"})


class FraudLoadOptions(LoadOptions):
    """Options of ``mlplug train fraud --data URL`` (``--target``, ``--id-col``, ...)."""

    target: str = Field(TARGET, description="label column; 0/1, yes/no, true/false, fraud/legit, ...")
    id_col: str | None = Field(None, description="transaction id column, kept but not a feature")
    time_col: str | None = Field(None, description="timestamp column, for time-ordered splits")
    amount_col: str | None = Field(
        None, description="transaction amount column: a missed fraud costs its amount"
    )
    format: Literal["csv", "parquet", "jsonl"] | None = Field(
        None, description="file format; by default taken from the file name"
    )
    categorical: list[str] = Field(
        default_factory=list, description="columns to treat as categorical even if numeric"
    )

    @field_validator("categorical", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        # The CLI passes one string; "mcc,region" is the natural way to give several.
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value


def load(url: str, options: FraudLoadOptions) -> Dataset:
    """Read ``url`` and return a validated :class:`Dataset`, or raise ``DataError``."""
    raw = read_table(url, options.format)
    raw.columns = [str(c) for c in raw.columns]
    schema = infer_schema(raw, options, url)
    # raw is this function's own frame, so it is changed in place rather than copied.
    raw[schema.target] = encode_labels(raw[schema.target], url, schema.target)
    if schema.time_column:
        raw[schema.time_column] = _parse_times(raw[schema.time_column], url, schema.time_column)
    return Dataset(schema.validate(raw, url), schema, url)


def infer_schema(frame: pd.DataFrame, options: FraudLoadOptions, source: str) -> Schema:
    """The schema for ``frame`` under ``options`` (see the module docstring for the rules)."""
    found = list(frame.columns)
    if options.target not in frame.columns:
        raise DataError(
            f"{source}: target column {options.target!r} not found; found columns {found}. "
            "Name the label column with the target option (--target)."
        )
    named = {
        "target": options.target,
        "id_col": options.id_col,
        "time_col": options.time_col,
        "amount_col": options.amount_col,
    }
    seen: dict[str, str] = {}
    for option, column in named.items():
        if column is None:
            continue
        if column not in frame.columns:
            raise DataError(f"{source}: {option} column {column!r} not found; found columns {found}")
        if column in seen:
            raise DataError(f"{source}: column {column!r} cannot be both {seen[column]} and {option}")
        seen[column] = option
    unknown = [c for c in options.categorical if c not in frame.columns]
    if unknown:
        raise DataError(f"{source}: categorical column(s) {unknown} not found; found columns {found}")

    excluded = {options.target, options.id_col, options.time_col}
    features: list[Column] = []
    ignored: dict[str, str] = {}
    for name in frame.columns:
        if name in excluded:
            continue
        if name in options.categorical:
            role: Role | None = Role.CATEGORICAL
        else:
            role, reason = infer_role(frame[name])
            if role is None:
                ignored[name] = reason
                log.warning("%s: column %r is not used as a feature: %s", source, name, reason)
                continue
        features.append(Column(name, role))
    if not features:
        raise DataError(
            f"{source}: no feature columns left besides target/id/time; found columns {found}"
            + (f"; ignored {ignored}" if ignored else "")
        )

    extras: dict[str, object] = {}
    if options.amount_col:
        roles = {c.name: c.role for c in features}
        _check_amount(frame[options.amount_col], roles.get(options.amount_col), ignored, source)
        extras[AMOUNT_EXTRA] = options.amount_col
    if ignored:
        extras[IGNORED_EXTRA] = ignored
    return Schema(
        features=tuple(features),
        target=options.target,
        classes=CLASSES,
        id_column=options.id_col,
        time_column=options.time_col,
        extras=extras,
    )


def infer_role(values: pd.Series) -> tuple[Role | None, str]:
    """The role of one column, or ``(None, reason)`` when it should not be a feature."""
    present = values.dropna()
    if present.empty:
        return None, "all values are missing"
    if pd.api.types.is_bool_dtype(values):
        return Role.BOOLEAN, "bool dtype"
    if pd.api.types.is_datetime64_any_dtype(values) or pd.api.types.is_timedelta64_dtype(values):
        return None, "holds dates/times; pass it as time_col to order the data by it"
    if isinstance(values.dtype, pd.CategoricalDtype):
        return Role.CATEGORICAL, "category dtype"
    if pd.api.types.is_numeric_dtype(values):
        return Role.NUMERIC, "numeric dtype"
    distinct = pd.unique(present)
    if len(distinct) <= len(_BOOLEAN_WORDS) and all(
        isinstance(v, bool | np.bool_) or str(v).strip().lower() in _BOOLEAN_WORDS for v in distinct
    ):
        return Role.BOOLEAN, "true/false words"
    share = pd.to_numeric(present, errors="coerce").notna().mean()
    if share >= NUMERIC_SHARE:
        return Role.NUMERIC, f"{share:.1%} of values are numbers"
    return Role.CATEGORICAL, "text"


def _check_amount(values: pd.Series, role: Role | None, ignored: dict[str, str], source: str) -> None:
    column = values.name
    if role is Role.NUMERIC:
        return  # stray non-numbers are reported with their row by Schema.validate
    if role is None:
        raise DataError(f"{source}: amount column {column!r} cannot be used: {ignored.get(str(column))}")
    parsed = pd.to_numeric(values, errors="coerce")
    bad = np.flatnonzero((parsed.isna() & values.notna()).to_numpy())
    example = f"; found {values.iloc[bad[0]]!r} at row {int(bad[0])}" if len(bad) else ""
    raise DataError(f"{source}: amount column {column!r} must be numeric, not {role.value}{example}")


def _parse_times(values: pd.Series, source: str, column: str) -> pd.Series:
    """Timestamps as naive UTC datetimes, so that a time-ordered split sorts them correctly
    whatever time zones the file mixes."""
    if pd.api.types.is_numeric_dtype(values):
        return values  # epoch numbers are already orderable
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").dt.tz_localize(None)
    if pd.api.types.is_datetime64_any_dtype(values):
        return values
    parsed = pd.to_datetime(values, utc=True, errors="coerce")
    if (parsed.isna() & values.notna()).any():
        # pandas guesses one format from the first value; files that mix formats need the
        # slower per-value parser.
        parsed = pd.to_datetime(values, utc=True, errors="coerce", format="mixed")
    bad = np.flatnonzero((parsed.isna() & values.notna()).to_numpy())
    if len(bad):
        row = int(bad[0])
        raise DataError(
            f"{source}: time column {column!r} has a value that is not a date/time: "
            f"{values.iloc[row]!r} at row {row}"
        )
    return parsed.dt.tz_localize(None)
