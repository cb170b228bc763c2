from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest
from mlplug_convqa.loader import ConvQALoadOptions
from mlplug_convqa.synthetic import generate_conversations
from pydantic import ValidationError

from mlplug.errors import DataError
from mlplug.schema import Role

OPTS = ConvQALoadOptions()


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return generate_conversations(60, seed=3)[["transcript", "label"]]


def _write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path, index=False)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_loads_each_format_and_keeps_multi_turn_text(task, frame, tmp_path, suffix) -> None:
    path = _write(frame, tmp_path / f"convs{suffix}")
    data = task.load(str(path), OPTS)
    assert len(data) == len(frame)
    assert data.schema.classes == tuple(sorted(frame["label"].unique()))
    assert data.schema.columns_with(Role.TEXT) == ["transcript"]
    assert data.frame["transcript"].tolist() == frame["transcript"].tolist()
    assert "\n" in data.frame["transcript"].iloc[0]
    assert data.source == str(path)


def test_file_url_custom_columns_and_explicit_format(task, frame, tmp_path) -> None:
    renamed = frame.rename(columns={"transcript": "body", "label": "outcome"})
    path = tmp_path / "export.txt"
    renamed.to_csv(path, index=False)
    options = task.options_model(text_col="body", label_col="outcome", format="csv")
    data = task.load(path.as_uri(), options)
    assert data.schema.feature_names == ["body"]
    assert data.schema.target == "outcome"
    assert len(data) == len(frame)


def test_any_label_set_works_and_classes_are_sorted(task, tmp_path) -> None:
    frame = pd.DataFrame(
        {"transcript": ["a: x", "b: y", "c: z", "d: w"], "label": ["spam", "ham", "spam", "ham"]}
    )
    data = task.load(str(_write(frame, tmp_path / "two.jsonl")), OPTS)
    assert data.schema.classes == ("ham", "spam")
    assert data.y.tolist() == [1, 0, 1, 0]


def test_gzipped_jsonl(task, frame, tmp_path) -> None:
    path = tmp_path / "convs.jsonl.gz"
    path.write_bytes(gzip.compress(frame.to_json(orient="records", lines=True).encode()))
    assert len(task.load(str(path), OPTS)) == len(frame)


def test_options_reject_unknown_fields(task) -> None:
    with pytest.raises(ValidationError):
        task.options_model(text_column="x")
    with pytest.raises(ValidationError):
        task.options_model(format="xlsx")


@pytest.mark.parametrize("missing", ["transcript", "label"])
def test_missing_column_names_file_and_lists_found_columns(task, frame, tmp_path, missing) -> None:
    path = _write(frame.drop(columns=[missing]).assign(other=1), tmp_path / "convs.csv")
    with pytest.raises(DataError) as err:
        task.load(str(path), OPTS)
    message = str(err.value)
    assert str(path) in message
    assert f"missing column(s) ['{missing}']" in message
    assert "found columns" in message and "'other'" in message


@pytest.mark.parametrize("empty", ["", "   ", None])
def test_empty_text_names_the_row(task, frame, tmp_path, empty) -> None:
    bad = frame.copy()
    bad.loc[7, "transcript"] = empty
    path = _write(bad, tmp_path / "convs.jsonl")
    with pytest.raises(DataError) as err:
        task.load(str(path), OPTS)
    assert str(path) in str(err.value)
    assert "'transcript' has empty text at row(s) [7]" in str(err.value)


def test_label_with_a_single_example_is_named(task, frame, tmp_path) -> None:
    bad = frame.copy()
    bad.loc[4, "label"] = "fraud_attempt"
    path = _write(bad, tmp_path / "convs.parquet")
    with pytest.raises(DataError) as err:
        task.load(str(path), OPTS)
    assert str(path) in str(err.value)
    assert "only one example: 'fraud_attempt' (row 4)" in str(err.value)


def test_a_single_label_is_not_a_classification_task(task, frame, tmp_path) -> None:
    path = _write(frame.assign(label="compliant"), tmp_path / "convs.csv")
    with pytest.raises(DataError, match=r"at least 2 different labels, found only \['compliant'\]"):
        task.load(str(path), OPTS)


def test_missing_label_names_the_row(task, frame, tmp_path) -> None:
    bad = frame.copy()
    bad.loc[3, "label"] = None
    with pytest.raises(DataError, match=r"'label' has a missing label at row\(s\) \[3\]"):
        task.load(str(_write(bad, tmp_path / "convs.jsonl")), OPTS)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_non_utf8_bytes_are_a_clear_error(task, tmp_path, suffix) -> None:
    path = tmp_path / f"latin1{suffix}"
    if suffix == ".csv":
        text = 'transcript,label\n"agent: caf\xe9 ol\xe9",a\n"agent: hi",b\n'
    else:
        text = '{"transcript": "agent: caf\xe9", "label": "a"}\n{"transcript": "agent: hi", "label": "b"}\n'
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(DataError) as err:
        task.load(str(path), OPTS)
    assert str(path) in str(err.value)
    assert "UTF-8" in str(err.value)


@pytest.mark.parametrize(("content", "expected"), [("", "empty"), ("transcript,label\n", "no data rows")])
def test_empty_file(task, tmp_path, content, expected) -> None:
    path = tmp_path / "empty.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=expected) as err:
        task.load(str(path), OPTS)
    assert str(path) in str(err.value)


def test_missing_file(task, tmp_path) -> None:
    with pytest.raises(DataError, match="not found"):
        task.load(str(tmp_path / "nope.csv"), OPTS)


def test_plain_load_options_mean_the_defaults(task, frame, tmp_path) -> None:
    from mlplug.task import LoadOptions

    data = task.load(str(_write(frame, tmp_path / "convs.csv")), LoadOptions())
    assert data.schema.feature_names == ["transcript"]
