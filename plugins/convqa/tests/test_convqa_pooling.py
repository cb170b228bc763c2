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


def test_frozen_layer_cache_gives_the_full_forward_and_restores_the_encoder() -> None:
    import torch
    from mlplug_convqa.model import pad_batch
    from mlplug_convqa.pooling import FrozenLayerCache
    from mlplug_convqa.tiny import tiny_bert_config
    from transformers import BertModel

    torch.manual_seed(0)
    config = tiny_bert_config(vocab_size=50, num_labels=3, hidden_size=16, layers=3, heads=2)
    network = MeanPoolingClassifier(BertModel(config, add_pooling_layer=False), 3).eval()
    ids = [[2, 5, 6, 7, 3], [2, 9, 3], [2, 10, 11, 12, 13, 14, 3]]
    cache = FrozenLayerCache(network, ids, depth=2, pad_id=0)
    assert [tuple(s.shape) for s in cache.states] == [(5, 16), (3, 16), (7, 16)]  # no padding kept

    rows = [2, 0, 1]
    input_ids, mask = pad_batch([ids[i] for i in rows], 0)
    with torch.no_grad():
        full = network(input_ids=input_ids, attention_mask=mask).logits
        cached = cache.logits(network, rows)
        only_top = FrozenLayerCache(network, ids, depth=1, pad_id=0).logits(network, rows)
    torch.testing.assert_close(cached, full)
    torch.testing.assert_close(only_top, full)
    assert len(network.encoder.encoder.layer) == 3
    assert not network.encoder.embeddings._forward_hooks
