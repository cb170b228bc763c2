"""The mean-pooling classifier: an encoder, the mean of its token vectors, a linear layer.

all-MiniLM-L6-v2 was trained as a sentence encoder through mean pooling, never through
BERT's ``[CLS]`` pooler, so a head on the mean vector starts from a representation that
already separates texts. On the demo's small samples it leaves the uniform-prediction loss
(ln 4) within the first epoch, where the ``[CLS]`` pooler head of
``AutoModelForSequenceClassification`` sits there for 60-100 steps
(``plugins/convqa/benchmarks/RESULTS.md``).

A saved mean-pooling model is the encoder as transformers saves it (``config.json``,
``model.safetensors``), its tokenizer, and the linear layer in :data:`HEAD_FILE`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from transformers.modeling_outputs import SequenceClassifierOutput

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel

HEAD_FILE = "head.safetensors"
_DEFAULT_DROPOUT = 0.1


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mean of the token vectors that the attention mask keeps (padding left out)."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


class MeanPoolingClassifier(torch.nn.Module):
    """``encoder`` (any transformers encoder model without a task head) + mean pooling +
    dropout + linear; ``forward`` answers like a transformers sequence classifier."""

    def __init__(self, encoder: PreTrainedModel, num_labels: int) -> None:
        super().__init__()
        self.encoder = encoder
        dropout = getattr(encoder.config, "hidden_dropout_prob", None)
        self.dropout = torch.nn.Dropout(_DEFAULT_DROPOUT if dropout is None else float(dropout))
        self.classifier = torch.nn.Linear(encoder.config.hidden_size, num_labels)

    @property
    def config(self) -> PretrainedConfig:
        return self.encoder.config

    @property
    def base_model(self) -> PreTrainedModel:
        return self.encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> SequenceClassifierOutput:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        pooled = mean_pool(hidden, attention_mask)
        return SequenceClassifierOutput(logits=self.classifier(self.dropout(pooled)))

    def save(self, path: Path) -> None:
        from safetensors.torch import save_file

        self.encoder.save_pretrained(path)
        head = {name: weight.detach().contiguous() for name, weight in self.classifier.state_dict().items()}
        save_file(head, str(Path(path) / HEAD_FILE))

    @classmethod
    def load(cls, path: Path, num_labels: int) -> MeanPoolingClassifier:
        from safetensors.torch import load_file
        from transformers import AutoModel

        encoder = AutoModel.from_pretrained(str(path), **_no_pooler(str(path)))
        model = cls(encoder, num_labels)
        model.classifier.load_state_dict(load_file(str(Path(path) / HEAD_FILE)))
        return model


def load_encoder(source: str) -> PreTrainedModel:
    """The pretrained encoder at ``source`` without any task head (and without BERT's
    ``[CLS]`` pooler, which mean pooling never uses)."""
    from transformers import AutoModel

    return AutoModel.from_pretrained(source, **_no_pooler(source))


def _no_pooler(source: str) -> dict[str, Any]:
    from transformers import AutoConfig

    # BERT-like encoders take add_pooling_layer; others (DistilBERT) have no pooler at all.
    model_type = AutoConfig.from_pretrained(source).model_type
    return {"add_pooling_layer": False} if model_type in {"bert", "roberta", "xlm-roberta"} else {}
