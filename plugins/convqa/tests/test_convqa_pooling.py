"""The mean-pooling head (saved-model format 2) and the [CLS] head of format-1 folders."""

from __future__ import annotations

import json

import numpy as np
import pytest
from mlplug_convqa.model import TransformerClassifier
from mlplug_convqa.pooling import HEAD_FILE, MeanPoolingClassifier, mean_pool
from mlplug_convqa.saved import MANIFEST


def test_mean_pool_ignores_padding() -> None:
    import torch

    hidden = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    pooled = mean_pool(hidden, mask)
    torch.testing.assert_close(pooled[0], hidden[0, :2].mean(dim=0))
    torch.testing.assert_close(pooled[1], hidden[1].mean(dim=0))


def test_mean_pooling_model_trains_saves_loads_and_predicts_identically(
    task, tiny, holdout, tmp_path
) -> None:
    model = tiny.model
    assert model.params.pooling == "mean"  # the default for new models
    assert isinstance(model.network, MeanPoolingClassifier)
    assert [h["epoch"] for h in model.history] == [1, 2]

    model.save(tmp_path)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert manifest["format_version"] == 2
    assert manifest["params"]["pooling"] == "mean"
    assert {"config.json", "model.safetensors", "tokenizer.json", HEAD_FILE} <= {
        p.name for p in tmp_path.iterdir()
    }

    loaded = task.load_model(tmp_path)
    assert isinstance(loaded, TransformerClassifier)
    assert isinstance(loaded.network, MeanPoolingClassifier)
    assert not loaded.network.training
    assert loaded.history == model.history
    expected = model.predict_proba(holdout.X)
    np.testing.assert_array_equal(loaded.predict_proba(holdout.X), expected)
    np.testing.assert_array_equal(
        loaded.predict_proba_rows([[t] for t in holdout.frame["transcript"]]), expected
    )


def _write_format_1(model: TransformerClassifier, path) -> None:
    """A folder exactly as releases before format 2 wrote it: transformers' sequence
    classifier, its tokenizer, and a format-1 manifest whose params have no ``pooling``."""
    model.network.save_pretrained(path)
    model.tokenizer.save_pretrained(path)
    params = model.params.model_dump()
    del params["pooling"]
    manifest = {
        "format_version": 1,
        "kind": "transformer",
        "classes": list(model.schema.classes),
        "schema": model.schema.to_dict(),
        "params": params,
        "history": model.history,
    }
    (path / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))


@pytest.mark.slow
def test_format_1_cls_folders_still_load(task, tiny_params, train_data, holdout, tmp_path) -> None:
    from transformers import BertForSequenceClassification

    cls_model = task.create_model(train_data.schema, {**tiny_params, "pooling": "cls"})
    cls_model.fit(train_data, holdout)
    assert isinstance(cls_model.network, BertForSequenceClassification)
    expected = cls_model.predict_proba(holdout.X)
    old = tmp_path / "v1"
    old.mkdir()
    _write_format_1(cls_model, old)

    loaded = task.load_model(old)
    assert isinstance(loaded.network, BertForSequenceClassification)
    assert loaded.params.pooling == "cls"
    np.testing.assert_array_equal(loaded.predict_proba(holdout.X), expected)

    # saved again by this release: format 2, and the head is named
    again = tmp_path / "v2"
    loaded.save(again)
    manifest = json.loads((again / MANIFEST).read_text())
    assert (manifest["format_version"], manifest["params"]["pooling"]) == (2, "cls")
    np.testing.assert_array_equal(task.load_model(again).predict_proba(holdout.X), expected)
