"""Validating Arrow chunks gives exactly what :meth:`Schema.validate` gives on the same chunk
in pandas: the same frame (values, dtypes, column order) and the same errors, naming the
column and the file's row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mlplug.errors import DataError
from mlplug.schema import Column, Role, Schema, categories_as_text
from mlplug.schema_arrow import validate_batch

SCHEMA = Schema(
    features=(
        Column("amount", Role.NUMERIC, nullable=False),
        Column("shop", Role.CATEGORICAL, nullable=False),
        Column("count", Role.NUMERIC),
        Column("present", Role.BOOLEAN, nullable=False),
        Column("flag", Role.BOOLEAN),
        Column("note", Role.TEXT),
        Column("kind", Role.CATEGORICAL),
    ),
    target="label",
    classes=("no", "yes"),
    id_column="id",
)


def _batch(**overrides: pa.Array) -> pa.RecordBatch:
    columns = {
        "id": pa.array(["a", "b", "c", "d"]),
        "amount": pa.array([1.5, -0.0, 3e300, 4.0]),
        "shop": pa.array(["food", "fuel", "food", " food"]).dictionary_encode(),
        "count": pa.array([1, None, 3, 2**53 + 1], type=pa.int64()),
        "present": pa.array([True, False, True, True]),
        "flag": pa.array(["yes", None, "F", "1"]).dictionary_encode(),
        "note": pa.array(["x", None, "", "y z"]),
        "kind": pa.array([None, "a", "b", "a"]).dictionary_encode(),
        **overrides,
    }
    return pa.RecordBatch.from_pydict(columns)


def _pandas_way(batch: pa.RecordBatch | pa.Table, first_row: int = 0) -> pd.DataFrame:
    frame = batch.to_pandas()
    return SCHEMA.validate(frame, "in", require_target=False, first_row=first_row)[SCHEMA.feature_names]


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        # Types the fast path leaves to pandas: numbers as text, booleans as numbers or with nulls.
        {"amount": pa.array(["1", "2.5", "-3", "4e2"])},
        {"present": pa.array([1, 0, 1, 1], type=pa.int8())},
        {"flag": pa.array([True, None, False, True])},
        {"count": pa.array([1.0, float("nan"), None, 2.0], type=pa.float32())},
        {"shop": pa.array(["food", "fuel", "food", "x"])},
        {"note": pa.array(["a", "b", "c", "d"]).dictionary_encode()},
        {"kind": pa.array(["a", "b", "a", "b"], type=pa.large_string())},
    ],
)
def test_the_frame_equals_schema_validate(overrides: dict[str, pa.Array]) -> None:
    batch = _batch(**overrides)
    got = validate_batch(SCHEMA, batch, "in")
    pd.testing.assert_frame_equal(got, _pandas_way(batch), check_exact=True)
    assert got["shop"].dtype == object and got["amount"].dtype == np.float64


def test_a_table_of_several_chunks_with_their_own_dictionaries() -> None:
    first = _batch()
    second = _batch(
        shop=pa.array(["zoo", "fuel", "zoo", "bar"]).dictionary_encode(),
        flag=pa.array(["no", "n", None, "TRUE"]).dictionary_encode(),
    )
    table = pa.Table.from_batches([first, second])
    assert table.column("shop").num_chunks == 2
    got = validate_batch(SCHEMA, table, "in")
    pd.testing.assert_frame_equal(got, _pandas_way(table), check_exact=True)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        # Plain text, large text and a dictionary of text: the same categories.
        {"shop": pa.array(["food", "fuel", "food", "x"])},
        {"kind": pa.array(["a", "b", "a", "b"], type=pa.large_string())},
        # "" and a missing value are the same category, once.
        {"kind": pa.array(["", None, "a", ""]).dictionary_encode()},
        # A value normalised by the pandas path (a number in a text column).
        {"shop": pa.array([1, 2, 1, 3], type=pa.int64())},
    ],
)
def test_categories_hold_the_values_schema_validate_gives(overrides: dict[str, pa.Array]) -> None:
    """For a model that accepts pandas ``category`` (``mlplug.task.CategoryModel``): the
    categorical columns, and only they, are category dtype of exactly the validated text."""
    batch = _batch(**overrides)
    got = validate_batch(SCHEMA, batch, "in", categories=True)
    for name in ("shop", "kind"):
        assert isinstance(got[name].dtype, pd.CategoricalDtype), name
        assert got[name].cat.categories.dtype == object and got[name].cat.categories.is_unique
        assert (got[name].cat.codes >= 0).all()  # missing is the category "", as in text
    assert got["note"].dtype == object and got["amount"].dtype == np.float64
    pd.testing.assert_frame_equal(categories_as_text(got), _pandas_way(batch), check_exact=True)


def test_categories_merge_the_dictionaries_of_several_chunks() -> None:
    """CSV blocks each bring their own dictionary: one set of categories for the chunk."""
    second = _batch(
        shop=pa.array(["zoo", "fuel", "zoo", "bar"]).dictionary_encode(),
        kind=pa.array(["c", None, "c", "a"]).dictionary_encode(),
    )
    table = pa.Table.from_batches([_batch(), second])
    got = validate_batch(SCHEMA, table, "in", categories=True)
    # (The value a missing one would take, "", may be a category no row uses.)
    assert set(got["shop"].cat.categories) - {""} == {" food", "bar", "food", "fuel", "zoo"}
    pd.testing.assert_frame_equal(categories_as_text(got), _pandas_way(table), check_exact=True)


def test_text_is_the_default() -> None:
    """Models that do not declare ``accepts_category_dtype`` keep getting ``object`` text."""
    got = validate_batch(SCHEMA, _batch(), "in")
    assert got["shop"].dtype == object and got["kind"].dtype == object
    assert categories_as_text(got) is got


def test_numbers_form_one_float_block_that_the_model_reads_without_copies() -> None:
    """As after :meth:`Schema.validate`: CatBoost builds its pool from a frame whose numbers
    are one float64 block in two thirds of the time it takes with one block per column."""
    got = validate_batch(SCHEMA, _batch(), "in")
    floats = [block for block in got._mgr.blocks if block.dtype == np.float64]
    assert len(floats) == 1 and floats[0].values.shape == (4, 4)
    assert list(got.columns) == SCHEMA.feature_names


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("amount", [1.0, 2.0, float("inf"), 4.0], "column 'amount' has an infinite value at row 1002"),
        ("count", [1.0, 2.0, 3.0, float("-inf")], "column 'count' has an infinite value at row 1003"),
        ("amount", [1.0, None, 3.0, 4.0], "column 'amount' has a missing value at row 1001"),
        ("amount", [1.0, 2.0, float("nan"), 4.0], "column 'amount' has a missing value at row 1002"),
        ("amount", ["1", "x", "3", "4"], "column 'amount' expects numbers, found 'x' at row 1001"),
        ("shop", ["a", "b", None, "c"], "column 'shop' has a missing value at row 1002"),
        ("present", [True, None, True, True], "column 'present' has a missing value at row 1001"),
        (
            "flag",
            ["yes", "no", "maybe", None],
            "column 'flag' expects 0/1 or true/false, found 'maybe' at row 1002",
        ),
    ],
)
def test_errors_name_the_column_and_the_row_as_schema_validate_does(
    column: str, values: list[object], message: str
) -> None:
    array = pa.array(values)
    encoded = [array]
    if pa.types.is_string(array.type):
        encoded.append(array.dictionary_encode())  # as the CSV reader gives categorical columns
    for piece in encoded:
        batch = _batch(**{column: piece})
        with pytest.raises(DataError) as pandas_way:
            _pandas_way(batch, first_row=1_000)
        for categories in (False, True):
            with pytest.raises(DataError) as arrow_way:
                validate_batch(SCHEMA, batch, "in", first_row=1_000, categories=categories)
            assert str(arrow_way.value) == str(pandas_way.value) == f"in: {message}"


def test_a_missing_feature_column_and_an_empty_chunk() -> None:
    with pytest.raises(DataError, match=r"missing column\(s\) \['note'\]"):
        validate_batch(SCHEMA, _batch().drop_columns(["note"]), "in")
    with pytest.raises(DataError, match="in: no rows"):
        validate_batch(SCHEMA, _batch().slice(0, 0), "in")
