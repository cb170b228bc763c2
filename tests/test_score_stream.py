"""Streamed batch scoring: chunked output equals unchunked output row for row, buffering is
bounded by the queue depth whatever the file's size, and a bad row in a late chunk fails the
run with a message naming the column and the file's row, leaving no output file behind."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import mlplug.score_stream as score_stream
from mlplug.blend import BlendModel
from mlplug.calibration import CalibratedModel, fit_calibrator
from mlplug.errors import DataError
from mlplug.schema import Schema
from mlplug.score_stream import score_file
from mlplug.scoring import LoadedModel
from mlplug.task import Model

ROWS = 5_000


@dataclass(frozen=True)
class _Version:
    version: int = 1
    threshold: float = 0.3


@pytest.fixture(scope="module")
def fraud() -> LoadedModel:
    """A small fraud CatBoost model: numeric, boolean and categorical features, an id column."""
    from mlplug_fraud import FraudTask

    task = FraudTask()
    data = task.synthesize(2_000, seed=0)
    model = task.create_model(data.schema, task.quick_params())
    model.fit(data.subset(slice(0, 1_500)), data.subset(slice(1_500, None)))
    return LoadedModel(_Version(), model, data.schema)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def raw_rows() -> pd.DataFrame:
    from mlplug_fraud.synthetic import generate_frame

    return generate_frame(ROWS, seed=7).drop(columns=["is_fraud"])


def _csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def test_chunked_output_equals_unchunked(fraud: LoadedModel, raw_rows: pd.DataFrame, tmp_path: Path) -> None:
    source = _csv(raw_rows, tmp_path / "in.csv")
    # What scoring the whole table in memory gives (the path `mlplug predict` took before).
    expected = fraud.score(pd.read_csv(source), "in.csv").output
    whole = score_file(fraud, str(source), tmp_path / "whole.csv", chunk_rows=1_000_000)
    chunked = score_file(fraud, str(source), tmp_path / "chunked.csv", chunk_rows=700)
    assert whole.chunks == 1 and chunked.chunks >= 5 and chunked.rows == whole.rows == ROWS
    one, many = pd.read_csv(tmp_path / "whole.csv"), pd.read_csv(tmp_path / "chunked.csv")
    pd.testing.assert_frame_equal(one, many)
    assert list(many.columns) == ["transaction_id", "probability", "prediction"]
    assert many["transaction_id"].tolist() == raw_rows["transaction_id"].tolist()
    assert np.array_equal(many["probability"].to_numpy(), expected["probability"].to_numpy())
    assert many["prediction"].tolist() == expected["prediction"].tolist()


def test_parquet_row_groups_in_parquet_out(
    fraud: LoadedModel, raw_rows: pd.DataFrame, tmp_path: Path
) -> None:
    source = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pandas(raw_rows, preserve_index=False), source, row_group_size=1_200)
    expected = fraud.score(raw_rows, "memory").output
    result = score_file(fraud, str(source), tmp_path / "out.parquet", chunk_rows=1_000)
    assert result.chunks >= 5
    # Labels are dictionary-encoded; unique ids and probabilities are not (a dictionary of
    # unique values is built and dropped again in every row group).
    group = pq.ParquetFile(tmp_path / "out.parquet").metadata.row_group(0)
    encodings = {group.column(i).path_in_schema: group.column(i).encodings for i in range(group.num_columns)}
    assert "RLE_DICTIONARY" in encodings["prediction"]
    assert "RLE_DICTIONARY" not in encodings["transaction_id"] + encodings["probability"]
    got = pd.read_parquet(tmp_path / "out.parquet")
    assert got["transaction_id"].tolist() == raw_rows["transaction_id"].tolist()
    assert np.array_equal(got["probability"].to_numpy(), expected["probability"].to_numpy())
    assert got["prediction"].tolist() == expected["prediction"].tolist()


@pytest.mark.parametrize("file_format", ["parquet", "csv"])
@pytest.mark.parametrize("chunk_rows", [2 * ROWS, ROWS, ROWS - 1, 1_000])
def test_files_smaller_than_as_large_as_and_larger_than_a_chunk(
    fraud: LoadedModel, raw_rows: pd.DataFrame, tmp_path: Path, file_format: str, chunk_rows: int
) -> None:
    """The output is the in-memory path's, row for row, however the file is cut; the
    warm-up before the first chunk never calls the model."""
    source = tmp_path / f"in.{file_format}"
    if file_format == "parquet":  # row groups that do not line up with the chunks
        pq.write_table(pa.Table.from_pandas(raw_rows, preserve_index=False), source, row_group_size=1_300)
    else:
        _csv(raw_rows, source)
    expected = fraud.score(raw_rows, "memory").output
    calls: list[int] = []

    class Counting:
        accepts_category_dtype = True

        def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
            calls.append(len(X))
            return np.asarray(fraud.model.predict_proba(X))

    loaded = LoadedModel(fraud.version, Counting(), fraud.schema)  # type: ignore[arg-type]
    result = score_file(loaded, str(source), tmp_path / "out.parquet", chunk_rows=chunk_rows)
    got = pd.read_parquet(tmp_path / "out.parquet")
    assert result.rows == ROWS and sum(calls) == ROWS and result.chunks == len(calls)
    assert got["transaction_id"].tolist() == raw_rows["transaction_id"].tolist()
    assert np.array_equal(got["probability"].to_numpy(), expected["probability"].to_numpy())
    assert got["prediction"].tolist() == expected["prediction"].tolist()
    if file_format == "csv":  # blocks sized in bytes: about chunk_rows rows
        assert max(calls) <= chunk_rows * 1.1 and (calls == [ROWS] or chunk_rows <= ROWS)
    else:  # row groups are read whole or in pieces of chunk_rows
        assert max(calls) <= min(chunk_rows, 1_300) and len(calls) >= ROWS / min(chunk_rows, 1_300)


def test_jsonl_in_jsonl_out(fraud: LoadedModel, raw_rows: pd.DataFrame, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    raw_rows.head(900).to_json(source, orient="records", lines=True, date_format="iso")
    expected = fraud.score(pd.read_json(source, lines=True), "memory").output
    result = score_file(fraud, str(source), tmp_path / "out.jsonl", chunk_rows=250)
    assert result.chunks == 4
    got = pd.read_json(tmp_path / "out.jsonl", lines=True)
    assert got["prediction"].tolist() == expected["prediction"].tolist()
    # Written with 15 decimal places (pandas' default, 10, would turn small probabilities to 0).
    assert np.allclose(got["probability"], expected["probability"], rtol=1e-11, atol=0)


def test_buffering_is_bounded_whatever_the_file_size(
    fraud: LoadedModel, raw_rows: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Memory is flat in the input size when the reader never runs more than the queue depth
    ahead of the model and each model call sees one chunk: counted, not timed."""
    source = _csv(pd.concat([raw_rows] * 4, ignore_index=True), tmp_path / "in.csv")
    chunk_rows = 500
    read = {"chunks": 0}
    ahead: list[int] = []
    calls: list[int] = []
    real_read = score_stream.read_chunks

    def counting_read(*args, **kwargs):  # type: ignore[no-untyped-def]
        header, chunks = real_read(*args, **kwargs)

        def counted():  # type: ignore[no-untyped-def]
            for chunk in chunks:
                read["chunks"] += 1
                yield chunk

        return header, counted()

    real_predict = fraud.model.predict_proba

    class Spy:
        def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
            calls.append(len(X))
            ahead.append(read["chunks"] - len(calls))
            return real_predict(X)

    monkeypatch.setattr(score_stream, "read_chunks", counting_read)
    spied = LoadedModel(fraud.version, Spy(), fraud.schema)  # type: ignore[arg-type]
    result = score_file(spied, str(source), tmp_path / "out.csv", chunk_rows=chunk_rows)
    assert result.rows == 4 * ROWS and sum(calls) == 4 * ROWS
    assert len(calls) >= 4 * ROWS / (2 * chunk_rows)  # many chunks, not one table
    assert max(calls) <= 2 * chunk_rows  # CSV blocks are sized in bytes: about chunk_rows
    # Chunks read but not yet scored: at most the reader's queue plus the one it holds.
    assert max(ahead) <= score_stream._QUEUE_DEPTH + 1


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("hour", "abc", "column 'hour' expects numbers, found 'abc' at row 4321"),
        (
            "card_present",
            "maybe",
            "column 'card_present' expects 0/1 or true/false, found 'maybe' at row 4321",
        ),
        ("merchant_category", None, "column 'merchant_category' has a missing value at row 4321"),
        ("amount", "inf", "column 'amount' has an infinite value at row 4321"),
    ],
)
def test_a_bad_row_in_a_late_chunk_names_it_and_leaves_no_output(
    fraud: LoadedModel, raw_rows: pd.DataFrame, tmp_path: Path, column: str, value: object, message: str
) -> None:
    bad = raw_rows.astype({column: object})
    bad.loc[4321, column] = value
    source = _csv(bad, tmp_path / "in.csv")
    out = tmp_path / "scores.csv"
    with pytest.raises(DataError) as caught:
        score_file(fraud, str(source), out, chunk_rows=400)
    assert str(caught.value) == f"{source}: {message}"
    assert not out.exists() and not list(tmp_path.glob("scores.csv*"))


def test_a_missing_column_is_named_before_any_work(
    fraud: LoadedModel, raw_rows: pd.DataFrame, tmp_path: Path
) -> None:
    source = _csv(raw_rows.drop(columns=["hour"]), tmp_path / "in.csv")
    with pytest.raises(DataError, match=r"missing column\(s\) \['hour'\]"):
        score_file(fraud, str(source), tmp_path / "out.csv")
    assert not list(tmp_path.glob("out.csv*"))


def test_the_profile_sample_is_uniform_and_capped(
    fraud: LoadedModel, raw_rows: pd.DataFrame, tmp_path: Path
) -> None:
    source = _csv(raw_rows, tmp_path / "in.csv")
    result = score_file(fraud, str(source), tmp_path / "out.csv", chunk_rows=500, profile_rows=1_000)
    assert result.sample is not None and len(result.sample.features) == 1_000
    # Uniform over the file, not the first chunks: the sample's hours match the file's.
    file_hours = raw_rows["hour"].astype(float)
    assert abs(result.sample.features["hour"].mean() - file_hours.mean()) < 0.5
    assert result.sample.features["amount"].isin(raw_rows["amount"]).all()
    none = score_file(fraud, str(source), tmp_path / "out2.csv", chunk_rows=500, profile_rows=0)
    assert none.sample is None


def test_gzip_and_tab_separated_csv(fraud: LoadedModel, raw_rows: pd.DataFrame, tmp_path: Path) -> None:
    import gzip

    head = raw_rows.head(1_000)
    expected = fraud.score(head, "memory").output
    gz = tmp_path / "in.csv.gz"
    gz.write_bytes(gzip.compress(head.to_csv(index=False).encode()))
    tsv = tmp_path / "in.tsv"
    head.to_csv(tsv, index=False, sep="\t")
    for source in (gz, tsv):
        out = tmp_path / f"{source.name}.out.csv"
        score_file(fraud, str(source), out, chunk_rows=300)
        got = pd.read_csv(out)
        assert np.array_equal(got["probability"].to_numpy(), expected["probability"].to_numpy()), source


@pytest.mark.parametrize("out_name", ["scores.csv", "scores.parquet"])
def test_a_model_failure_mid_file_leaves_no_output(
    fraud: LoadedModel, raw_rows: pd.DataFrame, tmp_path: Path, out_name: str
) -> None:
    source = _csv(raw_rows, tmp_path / "in.csv")
    calls = []

    class Failing:
        def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
            calls.append(len(X))
            if len(calls) == 4:
                raise RuntimeError("out of memory on chunk 4")
            return np.asarray(fraud.model.predict_proba(X))

    broken = LoadedModel(fraud.version, Failing(), fraud.schema)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="chunk 4"):
        score_file(broken, str(source), tmp_path / out_name, chunk_rows=500)
    assert len(calls) == 4 and not list(tmp_path.glob("scores*"))


def test_quoted_newlines_and_quotes_cross_block_boundaries(
    fraud: LoadedModel, raw_rows: pd.DataFrame, tmp_path: Path
) -> None:
    """The reader cuts the file into blocks at row ends: a newline inside a quoted field is
    not one."""
    odd = raw_rows.assign(transaction_id=[f'tx "{i}"\nline 2, {i}' for i in range(ROWS)])
    source = _csv(odd, tmp_path / "in.csv")
    expected = fraud.score(pd.read_csv(source), "memory").output
    result = score_file(fraud, str(source), tmp_path / "out.csv", chunk_rows=300)
    assert result.chunks > 5 and result.rows == ROWS
    got = pd.read_csv(tmp_path / "out.csv")
    assert got["transaction_id"].tolist() == odd["transaction_id"].tolist()
    assert np.array_equal(got["probability"].to_numpy(), expected["probability"].to_numpy())


@pytest.fixture(scope="module")
def candidates(fraud: LoadedModel) -> dict[str, Model]:
    """Every kind of fraud model a run can register: the CatBoost model, the baseline, their
    blend, and calibrated ones (the CatBoost model isotonic, the blend Platt)."""
    from mlplug_fraud import FraudTask

    task = FraudTask()
    data = task.synthesize(2_000, seed=0)
    baseline = task.create_baseline(data.schema)
    baseline.fit(data.subset(slice(0, 1_500)))
    blend = BlendModel([fraud.model, baseline], [0.7, 0.3], ["model", "baseline"])
    catboost_p = fraud.model.predict_proba(data.X)[:, 1]
    return {
        "catboost": fraud.model,
        "baseline": baseline,
        "blend": blend,
        "calibrated": CalibratedModel(fraud.model, fit_calibrator("isotonic", data.y, catboost_p)),
        "calibrated blend": CalibratedModel(
            blend, fit_calibrator("platt", data.y, blend.predict_proba(data.X)[:, 1])
        ),
    }


def _nullable_categories(schema: Schema) -> Schema:
    """The fraud schema with its categorical column allowed to be missing (it is not in the
    synthetic data), so that a missing value reaches the model."""
    features = tuple(
        replace(c, nullable=True) if c.name == "merchant_category" else c for c in schema.features
    )
    return replace(schema, features=features)


@pytest.mark.parametrize("kind", ["catboost", "baseline", "blend", "calibrated", "calibrated blend"])
@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_every_candidate_kind_scores_categories_as_it_scores_text(
    fraud: LoadedModel,
    candidates: dict[str, Model],
    raw_rows: pd.DataFrame,
    tmp_path: Path,
    kind: str,
    fmt: str,
) -> None:
    """The fraud models accept categorical columns as pandas ``category``
    (``accepts_category_dtype``): streamed, they get them so, and predict exactly what the
    in-memory path predicts from ``object`` text, for values never seen in training and for
    missing ones too."""
    model = candidates[kind]
    assert model.accepts_category_dtype is True  # type: ignore[attr-defined]
    rows = raw_rows.head(2_000).astype({"merchant_category": object})
    rows.loc[::7, "merchant_category"] = "never seen in training"
    rows.loc[3::11, "merchant_category"] = None
    loaded = LoadedModel(fraud.version, model, _nullable_categories(fraud.schema))
    expected = loaded.score(rows, "memory")
    assert expected.features["merchant_category"].dtype == object
    source = tmp_path / f"in.{fmt}"
    if fmt == "csv":
        _csv(rows, source)
    elif fmt == "parquet":
        pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), source, row_group_size=700)
    else:
        rows.to_json(source, orient="records", lines=True, date_format="iso")
    result = score_file(loaded, str(source), tmp_path / "out.parquet", chunk_rows=600, profile_rows=500)
    assert result.chunks >= 3
    got = pd.read_parquet(tmp_path / "out.parquet")
    assert np.array_equal(got["probability"].to_numpy(), expected.proba[:, 1])
    assert got["prediction"].tolist() == expected.output["prediction"].tolist()
    # The profiled sample is text, as monitoring reads it.
    assert result.sample is not None and result.sample.features["merchant_category"].dtype == object


class _Recording:
    """A model that records the dtype of the categorical column it is given (no
    ``accepts_category_dtype``: a third-party model written before it existed)."""

    def __init__(self, inner: Model) -> None:
        self.inner = inner
        self.dtypes: list[object] = []

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        self.dtypes.append(X["merchant_category"].dtype)
        return np.asarray(self.inner.predict_proba(X))


class _RecordingCategories(_Recording):
    accepts_category_dtype = True


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_only_a_model_that_accepts_categories_gets_them(
    fraud: LoadedModel, raw_rows: pd.DataFrame, tmp_path: Path, fmt: str
) -> None:
    rows = raw_rows.head(1_000)
    source = tmp_path / f"in.{fmt}"
    if fmt == "csv":
        _csv(rows, source)
    elif fmt == "parquet":
        pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), source)
    else:
        rows.to_json(source, orient="records", lines=True, date_format="iso")
    text, coded = _Recording(fraud.model), _RecordingCategories(fraud.model)
    outputs = []
    for model in (text, coded):
        loaded = LoadedModel(fraud.version, model, fraud.schema)  # type: ignore[arg-type]
        score_file(loaded, str(source), tmp_path / "out.csv", chunk_rows=400)
        outputs.append(pd.read_csv(tmp_path / "out.csv"))
    assert text.dtypes and all(dtype == np.dtype(object) for dtype in text.dtypes)
    assert coded.dtypes and all(isinstance(dtype, pd.CategoricalDtype) for dtype in coded.dtypes)
    pd.testing.assert_frame_equal(outputs[0], outputs[1], check_exact=True)


def test_a_blend_gives_text_to_a_member_that_does_not_accept_categories(
    fraud: LoadedModel, raw_rows: pd.DataFrame, tmp_path: Path
) -> None:
    text, coded = _Recording(fraud.model), _RecordingCategories(fraud.model)
    blend = BlendModel([coded, text], [0.5, 0.5], ["model", "baseline"])  # type: ignore[list-item]
    assert blend.accepts_category_dtype is True
    source = _csv(raw_rows.head(1_000), tmp_path / "in.csv")
    loaded = LoadedModel(fraud.version, blend, fraud.schema)
    score_file(loaded, str(source), tmp_path / "out.csv", chunk_rows=400)
    assert coded.dtypes and all(isinstance(dtype, pd.CategoricalDtype) for dtype in coded.dtypes)
    assert text.dtypes and all(dtype == np.dtype(object) for dtype in text.dtypes)
    plain = BlendModel([_Recording(fraud.model)], [1.0], ["model"])  # type: ignore[list-item]
    assert plain.accepts_category_dtype is False
    assert (
        CalibratedModel(
            plain, fit_calibrator("platt", np.array([0, 1]), np.array([0.2, 0.8]))
        ).accepts_category_dtype
        is False
    )
