"""Bring your own conversations: read a table of transcripts and labels into a Dataset.

Any text-classification table works: one text column (a whole multi-turn transcript per
row, turns separated by newlines) and one label column. The classes are the sorted label
names found in the data.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from mlplug.dataset import Dataset
from mlplug.errors import DataError
from mlplug.io import read_table
from mlplug.schema import Column, Role, Schema
from mlplug.task import LoadOptions
from mlplug_convqa.synthetic import LABEL_COLUMN, TEXT_COLUMN

_SHOWN = 5  # how many offending rows or labels a message lists


class ConvQALoadOptions(LoadOptions):
    """``--text-col``, ``--label-col`` and ``--format`` on the command line."""

    text_col: str = Field(default=TEXT_COLUMN, min_length=1, description="column holding the transcript")
    label_col: str = Field(default=LABEL_COLUMN, min_length=1, description="column holding the QA label")
    format: Literal["csv", "parquet", "jsonl"] | None = Field(
        default=None, description="file format; by default taken from the file name"
    )


def build_schema(
    classes: tuple[str, ...],
    text_col: str = TEXT_COLUMN,
    label_col: str = LABEL_COLUMN,
    id_col: str | None = None,
) -> Schema:
    return Schema(
        features=(Column(text_col, Role.TEXT, nullable=False, description="conversation transcript"),),
        target=label_col,
        classes=classes,
        id_column=id_col,
        extras={"text_column": text_col},
    )


def text_column(schema: Schema) -> str:
    """The one text column a convqa schema has."""
    cols = schema.columns_with(Role.TEXT)
    if len(cols) != 1:
        raise DataError(f"convqa expects exactly one text feature column, the schema has {cols}")
    return cols[0]


def texts_of(frame: pd.DataFrame, schema: Schema) -> list[str]:
    """The transcripts of ``frame`` as a list of strings (missing values become "")."""
    col = text_column(schema)
    if col not in frame.columns:
        raise DataError(f"missing text column {col!r}; found {list(map(str, frame.columns))}")
    values = frame[col]
    return values.where(values.notna(), "").astype(str).tolist()


def load_conversations(url: str, options: ConvQALoadOptions) -> Dataset:
    """Read and validate a labelled conversation table; ``DataError`` names what is wrong."""
    frame = read_table(url, options.format)
    text_col, label_col = options.text_col, options.label_col
    missing = [c for c in (text_col, label_col) if c not in frame.columns]
    if missing:
        raise DataError(
            f"{url}: missing column(s) {missing}; found columns {list(map(str, frame.columns))}. "
            "Choose the columns with --text-col and --label-col."
        )
    frame = frame.reset_index(drop=True)
    labels = _labels(frame[label_col], url, label_col)
    _check_texts(frame[text_col], url, text_col)
    counts = labels.value_counts()
    if len(counts) < 2:
        raise DataError(
            f"{url}: column {label_col!r} needs at least 2 different labels, "
            f"found only {sorted(counts.index)}"
        )
    single = sorted(counts.index[counts == 1])
    if single:
        rows = [int(np.flatnonzero((labels == name).to_numpy())[0]) for name in single[:_SHOWN]]
        where = ", ".join(f"{name!r} (row {row})" for name, row in zip(single, rows, strict=False))
        raise DataError(
            f"{url}: column {label_col!r} has label(s) with only one example: {where}. Every label needs "
            "at least 2 examples so that it can appear in training and holdout data; drop or merge them."
        )
    frame = frame.assign(**{label_col: labels})
    schema = build_schema(tuple(sorted(counts.index)), text_col, label_col)
    return Dataset(schema.validate(frame, url), schema, url)


def _labels(values: pd.Series, url: str, col: str) -> pd.Series:
    missing = values.isna() | values.astype(str).str.strip().eq("")
    if missing.any():
        rows = np.flatnonzero(missing.to_numpy())[:_SHOWN].tolist()
        raise DataError(f"{url}: column {col!r} has a missing label at row(s) {rows}")
    return values.astype(str).str.strip()


def _check_texts(values: pd.Series, url: str, col: str) -> None:
    empty = values.isna() | values.astype(str).str.strip().eq("")
    if empty.any():
        rows = np.flatnonzero(empty.to_numpy())
        shown = rows[:_SHOWN].tolist()
        more = f" and {len(rows) - len(shown)} more" if len(rows) > len(shown) else ""
        raise DataError(f"{url}: column {col!r} has empty text at row(s) {shown}{more} (rows count from 0)")
