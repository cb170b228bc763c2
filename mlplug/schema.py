"""Typed description of a task's data: feature columns with roles, the target and its classes.

A task's loader builds a :class:`Schema`; :meth:`Schema.validate` turns a raw frame into the
normalised frame that every later step relies on, or raises :class:`DataError` naming the
source, the column and what was expected.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from mlplug.errors import DataError

#: Decision threshold of a binary task whose version recorded none.
DEFAULT_THRESHOLD = 0.5


class Role(StrEnum):
    """How a column is used. The role fixes the dtype after validation."""

    NUMERIC = "numeric"  # float64; NaN allowed when the column is nullable
    CATEGORICAL = "categorical"  # str (object); missing becomes "" when nullable
    # (pandas ``category`` of the same values for a model that accepts it, see
    # ``mlplug.task.CategoryModel``)
    TEXT = "text"  # str; free text for text models
    BOOLEAN = "boolean"  # stored as float64 0/1 so that models see a number


@dataclass(frozen=True)
class Column:
    name: str
    role: Role
    nullable: bool = True
    description: str = ""


@dataclass(frozen=True)
class Schema:
    """Columns a model reads, the target column and the ordered class labels.

    After :meth:`validate`, the target column holds class indices ``0..len(classes)-1``;
    for binary tasks index 1 is the positive class.
    """

    features: tuple[Column, ...]
    target: str
    classes: tuple[str, ...]
    id_column: str | None = None
    time_column: str | None = None
    #: Free-form facts a task wants to keep with the schema (e.g. the amount column).
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [c.name for c in self.features]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise DataError(f"schema lists feature column(s) {dupes} more than once")
        if self.target in names:
            raise DataError(f"target column {self.target!r} is also listed as a feature")
        if len(self.classes) < 2:
            raise DataError(
                f"target column {self.target!r} needs at least 2 classes, got {list(self.classes)}"
            )

    @property
    def feature_names(self) -> list[str]:
        return [c.name for c in self.features]

    def columns_with(self, role: Role) -> list[str]:
        return [c.name for c in self.features if c.role is role]

    @property
    def is_binary(self) -> bool:
        return len(self.classes) == 2

    def predicted_indices(self, proba: np.ndarray, threshold: float | None = None) -> np.ndarray:
        """The predicted class of each row of ``proba``, as an index into ``classes``: for a
        binary task the positive class when its probability reaches ``threshold`` (default
        0.5), otherwise the likeliest class. Every mlplug component labels rows this way."""
        if self.is_binary:
            cut = DEFAULT_THRESHOLD if threshold is None else threshold
            return (proba[:, 1] >= cut).astype(np.int64)
        return proba.argmax(axis=1)

    def predicted_labels(self, proba: np.ndarray, threshold: float | None = None) -> list[str]:
        return [self.classes[i] for i in self.predicted_indices(proba, threshold).tolist()]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["features"] = [{**asdict(c), "role": c.role.value} for c in self.features]
        data["classes"] = list(self.classes)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schema:
        return cls(
            features=tuple(
                Column(
                    name=c["name"],
                    role=Role(c["role"]),
                    nullable=c.get("nullable", True),
                    description=c.get("description", ""),
                )
                for c in data["features"]
            ),
            target=data["target"],
            classes=tuple(data["classes"]),
            id_column=data.get("id_column"),
            time_column=data.get("time_column"),
            extras=dict(data.get("extras", {})),
        )

    def check_columns(self, found: Sequence[Any], source: str, *, require_target: bool = True) -> None:
        """Raise :class:`DataError` naming every required column missing from ``found``."""
        wanted = [*self.feature_names]
        if require_target:
            wanted.append(self.target)
        present = set(found)  # a set: wide tables would make this quadratic
        missing = [c for c in wanted if c not in present]
        if missing:
            raise DataError(
                f"{source}: missing column(s) {missing}; expected {wanted}, found {list(map(str, found))}"
            )

    def validate(
        self, frame: pd.DataFrame, source: str, *, require_target: bool = True, first_row: int = 0
    ) -> pd.DataFrame:
        """Return a normalised copy of ``frame`` or raise :class:`DataError`.

        ``source`` names the file or URL in every message. Without ``require_target`` the
        frame is scoring input and the target column may be absent. ``first_row`` is the
        number of the frame's first row in its source (a chunk of a larger file), so that
        messages name the row of the file.
        """
        if frame.empty:
            raise DataError(f"{source}: no rows")
        self.check_columns(list(frame.columns), source, require_target=require_target)
        # Collected first and framed once: inserting columns one by one costs quadratic time
        # and a PerformanceWarning per column on wide tables.
        out: dict[str, Any] = {}
        for col in self.features:
            out[col.name] = _coerce(frame[col.name].reset_index(drop=True), col, source, first_row)
        for extra in (self.id_column, self.time_column):
            if extra and extra in frame.columns and extra not in out:
                out[extra] = frame[extra].reset_index(drop=True)  # keeps tz-aware dtypes
        if require_target or self.target in frame.columns:
            target = frame[self.target].reset_index(drop=True)
            out[self.target] = self.encode_target(target, source, first_row)
        return pd.DataFrame(out, index=pd.RangeIndex(len(frame)))

    def encode_target(self, values: pd.Series, source: str, first_row: int = 0) -> np.ndarray:
        """Map labels (or already-encoded indices) to class indices."""
        if values.isna().any():
            row = first_row + int(np.flatnonzero(values.isna().to_numpy())[0])
            raise DataError(f"{source}: column {self.target!r} has a missing label at row {row}")
        lookup = {label: i for i, label in enumerate(self.classes)}
        as_text = values.astype(str)
        codes = as_text.map(lookup)
        if codes.isna().any():
            # Already-encoded indices (0..k-1) are accepted too.
            numeric = pd.to_numeric(values, errors="coerce")
            in_range = numeric.notna() & numeric.between(0, len(self.classes) - 1)
            in_range &= numeric == numeric.round()
            codes = codes.where(codes.notna(), numeric.where(in_range))
        if codes.isna().any():
            bad = sorted(set(as_text[codes.isna()]))[:5]
            raise DataError(
                f"{source}: column {self.target!r} has label(s) {bad} outside the classes "
                f"{list(self.classes)}"
            )
        return codes.astype(np.int64).to_numpy()


def _coerce(values: pd.Series, col: Column, source: str, first_row: int = 0) -> pd.Series:
    if isinstance(values.dtype, pd.CategoricalDtype):
        return _coerce_categories(values, col, source, first_row)
    if col.role in (Role.NUMERIC, Role.BOOLEAN):
        if col.role is Role.BOOLEAN:
            values = _booleans(values)
        numeric = values if values.dtype == np.float64 else _parse_numbers(values, col, source, first_row)
        infinite = np.isinf(numeric.to_numpy())
        if infinite.any():
            row = first_row + int(np.flatnonzero(infinite)[0])
            raise DataError(f"{source}: column {col.name!r} has an infinite value at row {row}")
        _check_nulls(numeric, col, source, first_row)
        return numeric
    _check_nulls(values, col, source, first_row)
    text = values.astype(object).where(values.notna(), "")
    return text.map(str).astype(object)


def _parse_numbers(values: pd.Series, col: Column, source: str, first_row: int) -> pd.Series:
    """``values`` as float64, or :class:`DataError` naming the first value that is no number.
    (Values already float64, as a typed reader gives them, skip this.)"""
    numeric = pd.to_numeric(values, errors="coerce")
    bad = numeric.isna() & values.notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        kind = "0/1 or true/false" if col.role is Role.BOOLEAN else "numbers"
        found = values.iloc[row]
        raise DataError(
            f"{source}: column {col.name!r} expects {kind}, found {found!r} at row {first_row + row}"
        )
    return numeric.astype(np.float64)


def _coerce_categories(values: pd.Series, col: Column, source: str, first_row: int) -> pd.Series:
    """A categorical column (dictionary-encoded Parquet or Arrow input) normalised through its
    few distinct values and expanded by code: what :func:`_coerce` of the plain values gives,
    without a Python call per row."""
    codes = values.cat.codes.to_numpy()
    missing = codes < 0
    categories = pd.Series(np.asarray(values.cat.categories, dtype=object), dtype=object)
    try:
        levels = _coerce(categories, Column(col.name, col.role), source).to_numpy()
    except DataError:  # a bad value: the plain path names the row where it first occurs
        return _coerce(values.astype(object), col, source, first_row)
    if missing.any():
        _check_nulls(pd.Series(np.where(missing, np.nan, 0.0)), col, source, first_row)
        blank = np.float64("nan") if col.role in (Role.NUMERIC, Role.BOOLEAN) else ""
        levels = np.append(levels, np.array([blank], dtype=levels.dtype))  # code -1 picks it
    if col.role in (Role.NUMERIC, Role.BOOLEAN):
        return pd.Series(levels.astype(np.float64)[codes])
    return pd.Series(levels[codes], dtype=object)


def categories_as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its pandas ``category`` columns as ``object`` text, as
    :meth:`Schema.validate` gives them: for a model that does not accept category dtype
    (``mlplug.task.CategoryModel``) and for monitoring. The other columns are not copied."""
    names = [name for name, dtype in frame.dtypes.items() if isinstance(dtype, pd.CategoricalDtype)]
    if not names:
        return frame
    out = frame.copy(deep=False)
    for name in names:
        out[name] = frame[name].astype(object)
    return out


def text_as_categories(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``frame`` with the validated text ``columns`` as pandas ``category``: the same values
    (categories are ``object`` text, in order of first appearance), for a model that accepts
    category dtype. The other columns are not copied."""
    out = frame.copy(deep=False)
    for name in columns:
        out[name] = category_values(frame[name].to_numpy(dtype=object))
    return out


def category_values(text: np.ndarray) -> pd.Categorical:
    """An ``object`` array of validated text (no missing values) as a ``Categorical``."""
    codes, levels = pd.factorize(text)
    return pd.Categorical.from_codes(codes, categories=pd.Index(levels, dtype=object), validate=False)


#: Words accepted as booleans (any case, surrounding spaces ignored).
BOOLEAN_WORDS = {
    **dict.fromkeys(("true", "yes", "y", "t"), 1.0),
    **dict.fromkeys(("false", "no", "n", "f"), 0.0),
}


def _booleans(values: pd.Series) -> pd.Series:
    """Vectorised: bools and boolean words become 0/1; anything else is left for the
    numeric parse, which reports what it cannot read."""
    if pd.api.types.is_bool_dtype(values):
        return values.astype(np.float64)
    if pd.api.types.is_numeric_dtype(values):
        return values
    words = values.astype("string").str.strip().str.lower().map(BOOLEAN_WORDS)
    bools = values.map(lambda v: float(v) if isinstance(v, bool | np.bool_) else np.nan)
    mapped = words.astype("Float64").fillna(bools).astype(object)
    return mapped.where(mapped.notna(), values)


def _check_nulls(values: pd.Series, col: Column, source: str, first_row: int = 0) -> None:
    if not col.nullable and values.isna().any():
        row = first_row + int(np.flatnonzero(values.isna().to_numpy())[0])
        raise DataError(f"{source}: column {col.name!r} has a missing value at row {row}")
