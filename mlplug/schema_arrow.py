""":meth:`Schema.validate` for Arrow chunks, without a pandas round trip of every column.

Streamed scoring reads chunks as Arrow with the schema's types (numbers as float64 or as the
file stores them, categorical and boolean columns dictionary-encoded). Converting a chunk to
pandas and validating it column by column cost about as much as a third of the model's own
time, mostly in copies: Arrow to pandas, each column coerced into a new array, and the frame
consolidated once more. Here every number goes straight from its Arrow buffer into one
float64 block (the layout the model gets from :meth:`Schema.validate`, and the one a tree
library reads fastest), checked there in place, and a dictionary-encoded column is normalised
through its few distinct values, then expanded by index.

Only the common, clean case is handled here. A column of another type, or one whose check
finds a problem (an infinite value, a missing value where none is allowed, a word that is no
boolean), goes through :meth:`Schema.validate`'s own per-column code instead, which either
raises the same error naming the column and the file's row, or gives the value it would
have given: this module never words an error of its own.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from mlplug.errors import DataError
from mlplug.schema import Column, Role, Schema, _coerce, category_values

_NUMBERS = (Role.NUMERIC, Role.BOOLEAN)


def validate_batch(
    schema: Schema,
    batch: pa.RecordBatch | pa.Table,
    source: str,
    *,
    first_row: int = 0,
    categories: bool = False,
) -> pd.DataFrame:
    """The feature frame ``schema.validate(batch.to_pandas(), ...)[schema.feature_names]``
    gives, with the same errors: float64 columns in one block, text columns as ``object``.

    With ``categories`` (for a model that accepts them, ``mlplug.task.CategoryModel``) the
    categorical columns are pandas ``category`` of the same values instead: a dictionary's
    indices become the codes and its normalised values the categories, so no Python string
    is made per row."""
    rows = batch.num_rows
    if rows == 0:
        raise DataError(f"{source}: no rows")
    schema.check_columns(batch.schema.names, source, require_target=False)
    numbers = [c for c in schema.features if c.role in _NUMBERS]
    # Rows of a (columns, rows) C-ordered array: each column contiguous, and pandas takes the
    # transposed view as its float block without copying it.
    block = np.empty((len(numbers), rows), dtype=np.float64)
    texts: dict[str, np.ndarray | pd.Categorical] = {}
    for col in schema.features:
        values = batch.column(col.name)
        if col.role in _NUMBERS:
            out = block[numbers.index(col)]
            if not _fill_numbers(values, col, out):
                out[:] = _coerce_pandas(values, col, source, first_row).to_numpy(dtype=np.float64)
        elif categories and col.role is Role.CATEGORICAL:
            coded = _categories(values, col)
            if coded is None:  # plain text, or a value for the pandas path to judge
                text = _texts(values, col, rows)
                coded = category_values(
                    text if text is not None else _coerce_pandas(values, col, source, first_row)
                )
            texts[col.name] = coded
        else:
            text = _texts(values, col, rows)
            texts[col.name] = text if text is not None else _coerce_pandas(values, col, source, first_row)
    frame = pd.DataFrame(block.T, columns=[c.name for c in numbers], copy=False)
    for position, col in enumerate(schema.features):
        if col.name in texts:
            column = texts[col.name]
            dtype = None if isinstance(column, pd.Categorical) else object
            frame.insert(position, col.name, pd.Series(column, dtype=dtype, copy=False))
    return frame


def _coerce_pandas(values: pa.Array | pa.ChunkedArray, col: Column, source: str, first_row: int) -> Any:
    """The column through :meth:`Schema.validate`'s own code: its errors, its values."""
    coerced = _coerce(pd.Series(values.to_pandas()), col, source, first_row)
    return coerced.to_numpy(dtype=object) if col.role not in _NUMBERS else coerced


def _pieces(values: pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    return list(values.chunks) if isinstance(values, pa.ChunkedArray) else [values]


def _fill_numbers(values: pa.Array | pa.ChunkedArray, col: Column, out: np.ndarray) -> bool:
    """Write the column into ``out`` as float64; False when the pandas path must decide
    (another type, a value that fails a check)."""
    start = 0
    for piece in _pieces(values):
        end = start + len(piece)
        kind = piece.type
        if pa.types.is_floating(kind) or pa.types.is_integer(kind):
            # Nulls become NaN, as in pandas; integers convert as numpy's astype does.
            out[start:end] = piece.to_numpy(zero_copy_only=False)
        elif col.role is Role.BOOLEAN and pa.types.is_boolean(kind) and not piece.null_count:
            out[start:end] = piece.to_numpy(zero_copy_only=False)
        elif pa.types.is_dictionary(kind):
            levels = _levels(piece, col)
            if levels is None:
                return False
            out[start:end] = levels.astype(np.float64)[_indices(piece, len(levels) - 1)]
        else:
            return False
        start = end
    if np.isfinite(out).all():
        return True
    # Infinite values are always an error, missing ones where the column allows none.
    return bool(col.nullable and not np.isinf(out).any())


def _texts(values: pa.Array | pa.ChunkedArray, col: Column, rows: int) -> np.ndarray | None:
    """The column as an object array of str (missing as ""), or None for the pandas path."""
    if values.null_count and not col.nullable:
        return None
    pieces = _pieces(values)
    if len(pieces) == 1 and pa.types.is_dictionary(pieces[0].type):  # no copy into ``out``
        levels = _levels(pieces[0], col)
        return None if levels is None else levels[_indices(pieces[0], len(levels) - 1)]
    out = np.empty(rows, dtype=object)
    start = 0
    for piece in pieces:
        end = start + len(piece)
        if pa.types.is_dictionary(piece.type):
            levels = _levels(piece, col)
            if levels is None:
                return None
            out[start:end] = levels[_indices(piece, len(levels) - 1)]
        elif _is_text(piece.type):
            out[start:end] = piece.fill_null("").to_numpy(zero_copy_only=False)
        else:
            return None
        start = end
    return out


def _categories(values: pa.Array | pa.ChunkedArray, col: Column) -> pd.Categorical | None:
    """A dictionary-encoded column as a ``Categorical`` of its normalised values (missing as
    ""), or None for the pandas path. Each piece of a chunked column (a CSV block) has its own
    dictionary: their levels are merged, and each piece's indices point into the merge."""
    if values.null_count and not col.nullable:
        return None
    levels: list[np.ndarray] = []
    indices: list[np.ndarray] = []
    merged = 0
    for piece in _pieces(values):
        if not pa.types.is_dictionary(piece.type):
            return None
        found = _levels(piece, col)
        if found is None:
            return None
        positions = _indices(piece, len(found) - 1)
        indices.append(positions + merged if merged else positions)
        levels.append(found)
        merged += len(found)
    # Normalising can make two values equal (and "" may be both a value and the missing one):
    # a category appears once, and each level points at its category.
    codes_of_level, names = pd.factorize(np.concatenate(levels) if len(levels) > 1 else levels[0])
    codes_of_level = codes_of_level.astype(_code_type(len(names)))
    codes = codes_of_level[np.concatenate(indices) if len(indices) > 1 else indices[0]]
    return pd.Categorical.from_codes(codes, categories=pd.Index(names, dtype=object), validate=False)


def _code_type(size: int) -> type[np.signedinteger[Any]]:
    """The integer type pandas keeps codes of ``size`` categories in (a copy otherwise)."""
    for kind in (np.int8, np.int16, np.int32):
        if size < np.iinfo(kind).max:
            return kind
    return np.int64


def _levels(piece: pa.DictionaryArray, col: Column) -> np.ndarray | None:
    """The dictionary normalised as :meth:`Schema.validate` normalises a categorical column
    (each distinct value once), plus the value of a missing one last; None for the pandas
    path (a value that fails, a dictionary of non-text values or with a missing entry)."""
    dictionary = piece.dictionary
    if dictionary.null_count or not _is_text(dictionary.type):
        return None
    if piece.null_count and not col.nullable:
        return None
    if len(dictionary) <= _CACHED_LEVELS:
        # Every CSV block comes with its own dictionary, nearly always the same few words:
        # normalising them through pandas costs a millisecond or two per column and chunk.
        return _small_levels(col.role, tuple(dictionary.to_pylist()))
    return _normalised(col.role, dictionary.to_numpy(zero_copy_only=False))


#: Dictionaries up to this many values have their normalised levels cached.
_CACHED_LEVELS = 256


@functools.lru_cache(maxsize=64)
def _small_levels(role: Role, values: tuple[str, ...]) -> np.ndarray | None:
    levels = _normalised(role, np.array(values, dtype=object))
    if levels is not None:
        levels.flags.writeable = False  # shared by every chunk with this dictionary
    return levels


def _normalised(role: Role, values: np.ndarray) -> np.ndarray | None:
    try:  # the column's name and nullability do not change how a value normalises
        levels = _coerce(pd.Series(values, dtype=object), Column("", role), "").to_numpy()
    except DataError:  # the pandas path names the row where the value first occurs
        return None
    blank = np.float64("nan") if role in _NUMBERS else ""
    return np.append(levels, np.array([blank], dtype=levels.dtype))


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _indices(piece: pa.DictionaryArray, missing: int) -> np.ndarray:
    """The dictionary indices, a missing value pointing at ``missing``."""
    indices = piece.indices
    if indices.null_count:
        indices = indices.fill_null(missing)
    return indices.to_numpy(zero_copy_only=False)
