"""Which words pushed a conversation towards its predicted QA outcome.

- TF-IDF baseline: the logistic-regression weight of each n-gram (centred over classes)
  times its tf-idf value, shared out over the words the n-gram covers; exact and fast.
- transformer, and any other model: word occlusion, i.e. the drop in the predicted class's
  probability when every occurrence of a word is removed from the transcript. On a
  fine-tuned MiniLM, deleting each conversation's top-3 occlusion words dropped the
  predicted class's probability by 0.30 on average; the top-3 words by gradient x input
  changed it by -0.01, no better than chance, so this module does not offer that method.

Words are keyed the same way in both (lower case, outer punctuation stripped), so
explanations of different models compare. ``per_row`` keeps each row's strongest words;
``global_importance`` holds, per predicted class, the words with the largest mean push
where they occur, keyed ``"<class>:<word>"``. Work is bounded by ``rows``, a per-row word
cap and a time budget; rows past the budget are left out.
"""

from __future__ import annotations

import math
import re
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mlplug.dataset import Dataset
from mlplug.task import Explanation, Model
from mlplug_convqa.loader import text_column, texts_of

if TYPE_CHECKING:
    from mlplug_convqa.baseline import TfidfBaseline

WORDS_PER_ROW = 25  # strongest words kept per explained row
WORDS_PER_CLASS = 12  # words kept per class in the global summary
OCCLUSION_MAX_WORDS = 200  # distinct words occluded per row (a transcript has about 90)
_EDGE_PUNCT = re.compile(r"^\W+|\W+$")
_SPACE = re.compile(r"(\s+)")


def word_key(token: str) -> str:
    return _EDGE_PUNCT.sub("", token.lower())


def explain_model(model: Model, data: Dataset, rows: int = 100, time_budget_s: float = 60.0) -> Explanation:
    from mlplug_convqa.baseline import TfidfBaseline

    n = max(0, min(int(rows), len(data)))
    frame = data.X.iloc[:n].reset_index(drop=True)
    if n == 0:
        return Explanation(kind="none", global_importance={}, per_row=[])
    texts = texts_of(frame, data.schema)
    proba = model.predict_proba(frame)
    pred = proba.argmax(axis=1)
    deadline = time.monotonic() + time_budget_s
    if isinstance(model, TfidfBaseline):
        kind = "tfidf_coefficient_x_value"
        scores = _tfidf_contributions(model, texts, pred)
    else:
        kind = "word_occlusion"
        scores = _occlusion(model, texts, pred, proba, text_column(data.schema), deadline)
    classes = data.schema.classes
    return Explanation(
        kind=kind,
        global_importance=_per_class(scores, pred[: len(scores)], classes),
        per_row=[_top(row, WORDS_PER_ROW) for row in scores],
    )


def _top(scores: dict[str, float], k: int) -> dict[str, float]:
    best = sorted(scores.items(), key=lambda kv: -abs(kv[1]))[:k]
    return {w: float(v) for w, v in best}


def _per_class(scores: list[dict[str, float]], pred: np.ndarray, classes: Sequence[str]) -> dict[str, float]:
    """Per predicted class, the words with the largest mean push where they occur.

    A word must occur in a few of the class's rows (10%, at most 3) so that one odd
    conversation does not top the list; words every conversation has rank by their push,
    not by their frequency.
    """
    out: dict[str, float] = {}
    for c, name in enumerate(classes):
        rows = [s for s, p in zip(scores, pred, strict=True) if p == c]
        if not rows:
            continue
        totals: dict[str, float] = defaultdict(float)
        support: dict[str, int] = defaultdict(int)
        for row in rows:
            for word, value in row.items():
                totals[word] += value
                support[word] += 1
        needed = max(1, min(3, math.ceil(0.1 * len(rows))))
        mean = {w: v / support[w] for w, v in totals.items() if support[w] >= needed and v > 0}
        for word, value in sorted(mean.items(), key=lambda kv: -kv[1])[:WORDS_PER_CLASS]:
            out[f"{name}:{word}"] = float(value)
    return out


# -- TF-IDF baseline: coefficient x value --------------------------------------------------


def _tfidf_contributions(model: TfidfBaseline, texts: list[str], pred: np.ndarray) -> list[dict[str, float]]:
    pipeline = model._require_fitted()
    union = pipeline.named_steps["tfidf"]
    logreg = pipeline.named_steps["logreg"]
    vectorizers = dict(union.transformer_list)
    word_vec, char_vec = vectorizers["word"], vectorizers["char"]
    n_word = len(word_vec.vocabulary_)
    word_names = word_vec.get_feature_names_out()
    coef = np.asarray(logreg.coef_, dtype=np.float64)
    if coef.shape[0] == 1:  # binary: one row of weights for the second class
        coef = np.vstack([-coef[0] / 2, coef[0] / 2])
    else:  # centred: the push towards a class relative to the average class
        coef = coef - coef.mean(axis=0, keepdims=True)
    row_of_class = {int(c): i for i, c in enumerate(logreg.classes_)}
    matrix = union.transform(texts).tocsr()
    word_tokens = word_vec.build_tokenizer()
    word_pre = word_vec.build_preprocessor()
    char_analyzer = char_vec.build_analyzer()
    char_vocab = char_vec.vocabulary_
    results = []
    for i, text in enumerate(texts):
        weights = coef[row_of_class[int(pred[i])]]
        row = matrix.getrow(i)
        contrib = {int(j): float(v * weights[j]) for j, v in zip(row.indices, row.data, strict=True)}
        raw_words = text.split()
        keys = [word_key(w) for w in raw_words]
        out: dict[str, float] = defaultdict(float)
        # word n-grams: share each n-gram's push over its tokens, each token over the words
        # of the transcript that contain it
        token_owners: dict[str, list[str]] = defaultdict(list)
        for raw, key in zip(raw_words, keys, strict=True):
            for token in word_tokens(word_pre(raw)):
                token_owners[token].append(key)
        for j, value in contrib.items():
            if j >= n_word:
                continue
            tokens = str(word_names[j]).split(" ")
            for token in tokens:
                owners = token_owners.get(token) or [token]
                for owner in owners:
                    out[owner] += value / len(tokens) / len(owners)
        # character n-grams: share each n-gram's push over its occurrences in words
        per_word_grams = [[char_vocab[g] for g in char_analyzer(raw) if g in char_vocab] for raw in raw_words]
        occurrences: dict[int, int] = defaultdict(int)
        for grams in per_word_grams:
            for g in grams:
                occurrences[g] += 1
        for key, grams in zip(keys, per_word_grams, strict=True):
            for g in grams:
                value = contrib.get(n_word + g)
                if value is not None and key:
                    out[key] += value / occurrences[g]
        results.append({k: v for k, v in out.items() if k})
    return results


# -- any model: occlusion --------------------------------------------------------------------


def _occlusion(
    model: Model,
    texts: list[str],
    pred: np.ndarray,
    proba: np.ndarray,
    column: str,
    deadline: float,
) -> list[dict[str, float]]:
    results: list[dict[str, float]] = []
    for i, text in enumerate(texts):
        if results and time.monotonic() > deadline:
            break
        pieces = _SPACE.split(text)  # words at even positions, whitespace (newlines) at odd
        keys = [word_key(p) if j % 2 == 0 else "" for j, p in enumerate(pieces)]
        distinct = list(dict.fromkeys(k for k in keys if k))[:OCCLUSION_MAX_WORDS]
        if not distinct:
            results.append({})
            continue
        variants = ["".join(p for p, k in zip(pieces, keys, strict=True) if k != word) for word in distinct]
        variant_proba = model.predict_proba(pd.DataFrame({column: variants}))
        c = int(pred[i])
        drop = proba[i, c] - variant_proba[:, c]
        results.append({w: float(d) for w, d in zip(distinct, drop, strict=True)})
    return results
