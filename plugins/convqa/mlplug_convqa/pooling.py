"""The mean-pooling classifier: an encoder, the mean of its token vectors, a linear layer.

all-MiniLM-L6-v2 was trained as a sentence encoder through mean pooling, never through
BERT's ``[CLS]`` pooler, so a head on the mean vector starts from a representation that
already separates texts. On the demo's small samples it leaves the uniform-prediction loss
(ln 4) within the first epoch, where the ``[CLS]`` pooler head of
``AutoModelForSequenceClassification`` sits there for 60-100 steps
(``plugins/convqa/benchmarks/RESULTS.md``).

When the lowest layers are frozen (``freeze_layers``), their output for a text never
changes during training, so :class:`FrozenLayerCache` computes it once per text and every
step runs only the layers above: a step of MiniLM with 4 of 6 layers frozen then costs the
two top layers' forward and backward passes instead of six forward and two backward.

A saved mean-pooling model is the encoder as transformers saves it (``config.json``,
``model.safetensors``), its tokenizer, and the linear layer in :data:`HEAD_FILE`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
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

    def lower(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, depth: int) -> torch.Tensor:
        """The hidden states after the embeddings and the lowest ``depth`` layers, computed
        in eval mode and without gradients (those layers are frozen)."""
        was_training = self.encoder.training
        self.encoder.eval()
        try:
            with torch.no_grad(), _only_layers(self.encoder, slice(0, depth)):
                return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        finally:
            self.encoder.train(was_training)

    def upper(
        self, hidden: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor, depth: int
    ) -> SequenceClassifierOutput:
        """:meth:`forward` from the output of :meth:`lower`: the layers above ``depth``, the
        pooling and the head."""
        # The encoder recomputes its (cheap) embeddings; the hook swaps in the cached states.
        hook = self.encoder.embeddings.register_forward_hook(lambda _module, _args, _out: hidden)
        try:
            with _only_layers(self.encoder, slice(depth, None)):
                top = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        finally:
            hook.remove()
        return SequenceClassifierOutput(logits=self.classifier(self.dropout(mean_pool(top, attention_mask))))

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


#: Where encoders keep their stack of layers: BERT, RoBERTa, MiniLM (encoder.layer),
#: DistilBERT (transformer.layer), others (encoder.layers).
_LAYER_PATHS = (("encoder", "layer"), ("transformer", "layer"), ("encoder", "layers"))


def layer_stack(encoder: torch.nn.Module) -> tuple[torch.nn.Module, str] | None:
    """The module holding ``encoder``'s stacked layers and that attribute's name, if found."""
    for *parents, attribute in _LAYER_PATHS:
        module: Any = encoder
        for name in parents:
            module = getattr(module, name, None)
        if isinstance(getattr(module, attribute, None), torch.nn.ModuleList):
            return module, attribute
    return None


@contextlib.contextmanager
def _only_layers(encoder: torch.nn.Module, part: slice) -> Iterator[None]:
    """Run ``encoder`` with only ``part`` of its layers for the duration (same modules)."""
    found = layer_stack(encoder)
    if found is None:
        raise ValueError(f"cannot find the layers of a {type(encoder).__name__}")
    holder, attribute = found
    layers = getattr(holder, attribute)
    setattr(holder, attribute, torch.nn.ModuleList(list(layers)[part]))
    try:
        yield
    finally:
        setattr(holder, attribute, layers)


class FrozenLayerCache:
    """The output of a network's frozen lower layers for each of a list of texts, computed
    once (in length-sorted batches) and stored without padding."""

    def __init__(
        self,
        network: MeanPoolingClassifier,
        ids: Sequence[Sequence[int]],
        depth: int,
        pad_id: int,
        batch_size: int = 32,
    ) -> None:
        from mlplug_convqa.model import pad_batch

        self.depth = depth
        self.pad_id = pad_id
        self.ids = ids
        self.states: list[torch.Tensor] = [torch.empty(0)] * len(ids)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            input_ids, mask = pad_batch([ids[i] for i in rows], pad_id)
            hidden = network.lower(input_ids, mask, depth)
            for j, i in enumerate(rows):
                self.states[i] = hidden[j, : len(ids[i])].clone()

    def logits(self, network: MeanPoolingClassifier, rows: Sequence[int]) -> torch.Tensor:
        """The network's logits for the texts at ``rows``, from the cached states."""
        from mlplug_convqa.model import pad_batch

        input_ids, mask = pad_batch([self.ids[i] for i in rows], self.pad_id)
        hidden = torch.nn.utils.rnn.pad_sequence([self.states[i] for i in rows], batch_first=True)
        return network.upper(hidden, input_ids, mask, self.depth).logits
