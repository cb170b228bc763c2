"""A tiny BERT trained from scratch, with a WordPiece tokenizer trained on the training texts.

Selected with ``model_name_or_path="tiny"``. It needs no files on disk and trains in
seconds, which keeps tests and demos fast; it is not meant to match a pretrained encoder.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import BertConfig, PreTrainedTokenizerFast

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

#: Parameters with which the tiny model learns the synthetic task in a few minutes on a
#: CPU: a from-scratch model needs a far higher learning rate than a pretrained one and many
#: more epochs (0.625 macro-F1 on the synthetic holdout after 3,000 conversations; MiniLM 0.81).
TINY_PARAMS: dict[str, object] = {
    "model_name_or_path": "tiny",
    "learning_rate": 1e-3,
    "epochs": 20,
    "batch_size": 32,
    "max_length": 160,
    "weight_decay": 0.05,
    "warmup_ratio": 0.1,
}


def train_wordpiece_tokenizer(texts: Iterable[str], vocab_size: int = 3000) -> PreTrainedTokenizerFast:
    """An uncased BERT-style WordPiece tokenizer learned from ``texts``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=list(SPECIAL_TOKENS), show_progress=False
    )
    backend.train_from_iterator(texts, trainer=trainer)
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        special_tokens=[("[CLS]", backend.token_to_id("[CLS]")), ("[SEP]", backend.token_to_id("[SEP]"))],
    )
    backend.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def tiny_bert_config(
    vocab_size: int,
    num_labels: int,
    max_positions: int = 512,
    hidden_size: int = 64,
    layers: int = 2,
    heads: int = 2,
) -> BertConfig:
    """A BERT config small enough to train on a laptop CPU in seconds."""
    from transformers import BertConfig

    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden_size * 4,
        max_position_embeddings=max_positions,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        num_labels=num_labels,
        pad_token_id=0,
    )
