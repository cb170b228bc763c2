from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlplug_fraud import FraudTask
from mlplug_fraud.columns import IGNORED_EXTRA
from mlplug_fraud.loader import FraudLoadOptions
from mlplug_fraud.synthetic import fraud_schema, generate_frame

from mlplug.errors import DataError
from mlplug.schema import Role

SYNTHETIC_OPTIONS = FraudLoadOptions(id_col="transaction_id", time_col="timestamp", amount_col="amount")


def write(frame: pd.DataFrame, path: Path) -> str:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True, date_format="iso")
    return str(path)


def small_table(rows: int = 40, **columns: Any) -> pd.DataFrame:
    """A tiny valid table; keyword arguments replace or add columns."""
    rng = np.random.default_rng(0)
    base = {
        "amount": rng.uniform(1, 500, rows).round(2),
        "merchant": rng.choice(["shop", "cafe", "fuel"], rows),
        "is_fraud": np.tile([0, 0, 0, 1], rows // 4),
    }
    base.update(columns)
    return pd.DataFrame(base)


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_synthetic_file_round_trips_with_the_same_schema(
    tmp_path: Path, suffix: str, task: FraudTask
) -> None:
    raw = generate_frame(600, seed=1)
    url = write(raw, tmp_path / f"tx{suffix}")
    data = task.load(url, SYNTHETIC_OPTIONS)
    # Same names and roles as the generator's schema (a file carries no descriptions).
    assert [(c.name, c.role) for c in data.schema.features] == [
        (c.name, c.role) for c in fraud_schema().features
    ]
    assert data.schema.extras["amount_column"] == "amount"
    assert (data.schema.id_column, data.schema.time_column) == ("transaction_id", "timestamp")
    np.testing.assert_array_equal(data.y, raw["is_fraud"].to_numpy())
    assert list(data.frame["transaction_id"]) == list(raw["transaction_id"])
    times = data.frame["timestamp"]
    assert pd.api.types.is_datetime64_any_dtype(times) and times.dt.tz is None  # naive UTC
    assert list(times) == list(raw["timestamp"])
    assert data.source == url


def test_time_zones_are_converted_to_utc(tmp_path: Path, task: FraudTask) -> None:
    # Three spellings, two with offsets, and a date without a time.
    times = ["2024-03-01T10:00:00+02:00", "2024-03-01T09:30:00Z", "2024-03-01 07:00:00"] * 12
    times += ["2024-03-02"] * 4
    url = write(small_table(ts=times), tmp_path / "t.csv")
    data = task.load(url, FraudLoadOptions(time_col="ts"))
    assert [str(t) for t in data.frame["ts"][:3]] == [
        "2024-03-01 08:00:00",
        "2024-03-01 09:30:00",
        "2024-03-01 07:00:00",
    ]
    assert "ts" not in data.schema.feature_names and "ts" in data.frame.columns


def test_file_url_and_explicit_format(tmp_path: Path, task: FraudTask) -> None:
    path = tmp_path / "data.txt"
    small_table().to_csv(path, index=False)
    data = task.load(path.as_uri(), FraudLoadOptions(format="csv"))
    assert len(data) == 40


@pytest.mark.parametrize(
    "labels",
    [
        [0, 1],
        [0.0, 1.0],
        ["0", "1"],
        [False, True],
        ["false", "TRUE"],
        ["no", "Yes"],
        ["n", "Y"],
        ["legit", "fraud"],
        ["Legitimate", "FRAUD"],
        [" genuine ", "fraudulent"],
    ],
)
def test_binary_labels_are_normalised(tmp_path: Path, task: FraudTask, labels: list[Any]) -> None:
    legit, fraud = labels
    column = [legit, legit, legit, fraud] * 10
    url = write(small_table(is_fraud=column), tmp_path / "t.parquet")
    data = task.load(url, FraudLoadOptions())
    assert data.schema.classes == ("legit", "fraud")
    np.testing.assert_array_equal(data.y, [0, 0, 0, 1] * 10)


def test_roles_are_inferred(tmp_path: Path, task: FraudTask) -> None:
    rows = 40
    table = small_table(
        rows,
        yes_no=["yes", "no"] * (rows // 2),
        flag=[True, False] * (rows // 2),
        mcc=[5411, 5812] * (rows // 2),
        empty=[None] * rows,
        created=pd.date_range("2024-01-01", periods=rows, freq="h"),
        label=[0, 0, 0, 1] * (rows // 4),
    ).drop(columns="is_fraud")
    url = write(table, tmp_path / "t.parquet")
    data = task.load(url, FraudLoadOptions(target="label", categorical="mcc, merchant"))
    roles = {c.name: c.role for c in data.schema.features}
    assert roles == {
        "amount": Role.NUMERIC,
        "merchant": Role.CATEGORICAL,
        "yes_no": Role.BOOLEAN,
        "flag": Role.BOOLEAN,
        "mcc": Role.CATEGORICAL,  # forced by the option
    }
    assert set(data.schema.extras[IGNORED_EXTRA]) == {"empty", "created"}
    assert set(data.frame["mcc"]) == {"5411", "5812"}


def test_mostly_numeric_text_column_is_numeric(tmp_path: Path, task: FraudTask) -> None:
    # Missing-value spellings pandas knows ("NA") stay missing; the column stays numeric.
    amounts: list[Any] = [str(v) for v in range(1, 41)]
    amounts[5] = "NA"
    url = write(small_table(amount=amounts), tmp_path / "t.csv")
    data = task.load(url, FraudLoadOptions(amount_col="amount"))
    assert data.schema.columns_with(Role.NUMERIC) == ["amount"]
    assert np.isnan(data.frame["amount"][5])


# -- bad input: each error names the file and the column ----------------------------------


def load_error(url: str, options: FraudLoadOptions | None = None) -> str:
    with pytest.raises(DataError) as info:
        FraudTask().load(url, options or FraudLoadOptions())
    return str(info.value)


def test_missing_target_column_lists_the_columns_found(tmp_path: Path) -> None:
    url = write(small_table().rename(columns={"is_fraud": "label"}), tmp_path / "t.csv")
    message = load_error(url)
    assert url in message and "'is_fraud'" in message
    assert "found columns ['amount', 'merchant', 'label']" in message


def test_non_binary_target_names_the_values(tmp_path: Path) -> None:
    url = write(small_table(is_fraud=[0, 1, 2, 0] * 10), tmp_path / "t.csv")
    message = load_error(url)
    assert url in message and "'is_fraud'" in message
    assert "not binary" in message and "3 distinct values [0, 1, 2]" in message


def test_two_unknown_labels_are_refused(tmp_path: Path) -> None:
    url = write(small_table(is_fraud=["a", "b", "b", "b"] * 10), tmp_path / "t.jsonl")
    message = load_error(url)
    assert url in message and "'is_fraud'" in message and "['a', 'b']" in message


def test_single_class_is_refused(tmp_path: Path) -> None:
    url = write(small_table(is_fraud=["no"] * 40), tmp_path / "t.csv")
    message = load_error(url)
    assert url in message and "'is_fraud'" in message and "single class" in message


def test_missing_label_names_the_row(tmp_path: Path) -> None:
    labels: list[Any] = [0, 0, 0, 1] * 10
    labels[7] = None
    url = write(small_table(is_fraud=labels), tmp_path / "t.csv")
    message = load_error(url)
    assert url in message and "'is_fraud'" in message and "row 7" in message


def test_non_numeric_value_in_numeric_column_names_column_row_and_value(tmp_path: Path) -> None:
    amounts: list[Any] = [f"{v}.50" for v in range(40)]
    amounts[13] = "abc"
    url = write(small_table(amount=amounts), tmp_path / "t.csv")
    message = load_error(url)
    assert url in message and "'amount'" in message and "'abc'" in message and "row 13" in message


def test_non_numeric_amount_column_is_refused(tmp_path: Path) -> None:
    url = write(small_table(merchant=["shop", "cafe"] * 20), tmp_path / "t.csv")
    message = load_error(url, FraudLoadOptions(amount_col="merchant"))
    assert url in message and "amount column 'merchant' must be numeric" in message
    assert "'shop' at row 0" in message


def test_empty_amount_column_is_refused(tmp_path: Path) -> None:
    url = write(small_table(spent=[None] * 40), tmp_path / "t.parquet")
    message = load_error(url, FraudLoadOptions(amount_col="spent"))
    assert url in message and "amount column 'spent' cannot be used: all values are missing" in message


def test_unparseable_time_column(tmp_path: Path) -> None:
    times = ["2024-01-01 10:00"] * 40
    times[3] = "yesterday"
    url = write(small_table(ts=times), tmp_path / "t.csv")
    message = load_error(url, FraudLoadOptions(time_col="ts"))
    assert url in message and "'ts'" in message and "'yesterday'" in message and "row 3" in message


@pytest.mark.parametrize("option", ["id_col", "time_col", "amount_col"])
def test_named_column_that_does_not_exist(tmp_path: Path, option: str) -> None:
    url = write(small_table(), tmp_path / "t.csv")
    message = load_error(url, FraudLoadOptions(**{option: "nope"}))
    assert url in message and f"{option} column 'nope' not found" in message


def test_one_column_in_two_roles(tmp_path: Path) -> None:
    url = write(small_table(), tmp_path / "t.csv")
    message = load_error(url, FraudLoadOptions(id_col="amount", amount_col="amount"))
    assert "cannot be both id_col and amount_col" in message


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")
    message = load_error(str(path))
    assert str(path) in message and "empty" in message


def test_header_only_file(tmp_path: Path) -> None:
    path = tmp_path / "header.csv"
    path.write_text("amount,merchant,is_fraud\n")
    message = load_error(str(path))
    assert str(path) in message and "no data rows" in message


def test_missing_file(tmp_path: Path) -> None:
    url = str(tmp_path / "nowhere.parquet")
    message = load_error(url)
    assert url in message and "not found" in message


def test_only_target_column(tmp_path: Path) -> None:
    url = write(small_table()[["is_fraud"]], tmp_path / "t.csv")
    assert "no feature columns" in load_error(url)


def test_unknown_option_is_rejected() -> None:
    with pytest.raises(ValueError, match="extra"):
        FraudLoadOptions(targett="x")  # type: ignore[call-arg]
