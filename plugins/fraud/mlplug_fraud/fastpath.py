"""Single-row scoring for the served CatBoost model without CatBoost's per-call overhead.

``CatBoostClassifier.predict_proba`` spends ~100 us per call building a pool and checking
it, whatever the number of rows; for the one-row requests of an inference server that is
most of the cost. A fitted model is a sum of oblivious trees: each tree compares a few
features with borders and the resulting bits index its leaf values. :class:`CompiledTrees`
turns the model's JSON export into arrays and evaluates a handful of rows with a few numpy
operations.

It supports what the fraud model uses: binary Logloss, numeric features and one-hot encoded
categorical ones. CatBoost stores a category as a hash in its one-hot splits; the hashes of
the training categories (recorded by the model at fit time) are read back with CatBoost's
own ``calc_leaf_indexes`` on probe rows, so no hash function is reimplemented here. A
category never seen in training matches no split, as in CatBoost. Anything else (target
statistics for high-cardinality categories, multiclass, text features) returns ``None`` from
:meth:`CompiledTrees.build`, and the caller keeps using CatBoost. Every compiled model is
checked against CatBoost on generated rows before it is used.
"""

from __future__ import annotations

import json
import logging
import math
import operator
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from catboost import CatBoostClassifier, Pool

log = logging.getLogger(__name__)

#: Largest disagreement with CatBoost tolerated by the self-check (float64 summation order).
TOLERANCE = 1e-9
_BINARY_LOSSES = {"Logloss", "CrossEntropy"}


@dataclass(frozen=True)
class CompiledTrees:
    """An oblivious-tree ensemble as arrays.

    Every distinct split (column of the extended row, border) is evaluated once per row; a
    tree's leaf index is then the dot product of those bits with the tree's powers of two
    (``weights``), one small matrix product for all trees.
    """

    #: Position in a row of each numeric feature, in CatBoost's float-feature order.
    float_positions: np.ndarray
    #: Value used for NaN per numeric feature: +inf where CatBoost treats NaN as "above every
    #: border", -inf where it treats it as below.
    nan_fill: np.ndarray
    #: Per categorical feature: (position in a row, category -> indicator columns it sets).
    categories: tuple[tuple[int, dict[str, tuple[int, ...]]], ...]
    #: Columns of the extended row: numeric features, then one indicator per one-hot split.
    width: int
    split_column: np.ndarray  # (splits,) column of the extended row each distinct split reads
    split_border: np.ndarray  # (splits,) float32
    weights: np.ndarray  # (splits, trees) float32: 2**level where the tree uses the split
    leaves: np.ndarray  # (trees * 2**depth,) leaf values, tree after tree
    scale: float
    bias: float
    _take: Callable[[Sequence[Any]], Any] = field(init=False, repr=False)
    _leaf_base: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        positions = [int(p) for p in self.float_positions]
        # itemgetter with one index returns a scalar, not a tuple; reshape() copes with both.
        take = operator.itemgetter(*positions) if positions else (lambda row: ())
        object.__setattr__(self, "_take", take)
        trees = self.weights.shape[1]
        object.__setattr__(
            self, "_leaf_base", np.arange(trees, dtype=np.intp) * (len(self.leaves) // max(trees, 1))
        )

    def predict_proba(self, rows: Sequence[Sequence[Any]]) -> np.ndarray:
        n = len(rows)
        take = self._take
        floats = np.array([take(row) for row in rows], dtype=np.float64).reshape(n, -1)
        nan = np.isnan(floats)
        if nan.any():
            floats = np.where(nan, self.nan_fill, floats)
        extended = np.zeros((n, self.width), dtype=np.float32)
        # CatBoost compares float32 features with float32 borders; so does this.
        extended[:, : floats.shape[1]] = floats
        for position, table in self.categories:
            for i, row in enumerate(rows):
                columns = table.get(row[position])
                if columns:
                    extended[i, columns] = 1.0
        bits = extended[:, self.split_column] > self.split_border
        # Sums of distinct powers of two below 256 are exact in float32.
        index = np.matmul(bits, self.weights).astype(np.intp)
        index += self._leaf_base  # (rows, trees) positions in the flat leaf array
        raw = np.take(self.leaves, index).sum(axis=1)
        if self.scale != 1.0 or self.bias != 0.0:
            raw = raw * self.scale + self.bias
        if n <= 8:  # a few rows: plain floats beat numpy's per-call overhead
            return np.array([[1.0 - p, p] for p in map(_sigmoid, raw.tolist())])
        out = np.empty((n, 2))
        out[:, 1] = 1.0 / (1.0 + np.exp(-raw))
        out[:, 0] = 1.0 - out[:, 1]
        return out

    # -- building ------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        model: CatBoostClassifier,
        features: Sequence[str],
        categories: Mapping[str, Sequence[str]] | None,
    ) -> CompiledTrees | None:
        """Compile ``model`` (trained on ``features`` in this order) or say why not (``None``)."""
        try:
            compiled = cls._compile(model, list(features), categories or {})
        except _Unsupported as reason:
            log.info("CatBoost fast path off: %s; scoring with CatBoost", reason)
            return None
        error = compiled._disagreement(model, list(features), categories or {})
        if error > TOLERANCE:
            log.warning("CatBoost fast path off: differs from CatBoost by %.3g; scoring with CatBoost", error)
            return None
        return compiled

    @classmethod
    def _compile(
        cls, model: CatBoostClassifier, features: list[str], categories: Mapping[str, Sequence[str]]
    ) -> CompiledTrees:
        loss = str(model.get_all_params().get("loss_function", ""))
        if loss not in _BINARY_LOSSES:
            raise _Unsupported(f"loss {loss!r} is not binary Logloss")
        if list(model.feature_names_) != features:
            raise _Unsupported("model features differ from the rows' feature order")
        with tempfile.TemporaryDirectory(prefix="mlplug-catboost-") as tmp:
            path = Path(tmp) / "model.json"
            model.save_model(str(path), format="json")
            spec = json.loads(path.read_text())
        if "oblivious_trees" not in spec:
            raise _Unsupported("trees are not oblivious")
        info = spec["features_info"]
        if info.get("text_features") or info.get("embedding_features") or spec.get("ctr_data"):
            raise _Unsupported("text, embedding or target-statistic features")
        scale, biases = spec["scale_and_bias"]
        if len(biases) != 1:
            raise _Unsupported("more than one output dimension")
        float_info = sorted(info.get("float_features", []), key=lambda f: f["feature_index"])
        cat_info = sorted(info.get("categorical_features", []), key=lambda f: f["feature_index"])
        trees = spec["oblivious_trees"]
        depth = max((len(t["splits"]) for t in trees), default=0)
        if depth > 8:
            raise _Unsupported(f"trees deeper than 8 ({depth})")
        width = len(float_info)
        onehot: dict[tuple[int, int], int] = {}  # (cat feature index, hash) -> column
        split_column = np.zeros((len(trees), max(depth, 1)), dtype=np.int64)
        split_border = np.full((len(trees), max(depth, 1)), np.inf, dtype=np.float32)
        onehot_splits: list[tuple[int, int, int, int]] = []  # (tree, level, cat index, hash)
        for t, tree in enumerate(trees):
            for d, split in enumerate(tree["splits"]):
                kind = split["split_type"]
                if kind == "FloatFeature":
                    split_column[t, d] = split["float_feature_index"]
                    split_border[t, d] = split["border"]
                elif kind == "OneHotFeature":
                    key = (split["cat_feature_index"], split["value"])
                    if key not in onehot:
                        onehot[key] = width
                        width += 1
                    split_column[t, d] = onehot[key]
                    split_border[t, d] = 0.5
                    onehot_splits.append((t, d, *key))
                else:
                    raise _Unsupported(f"split type {kind}")
        leaves = np.zeros((len(trees), 2 ** max(depth, 1)), dtype=np.float64)
        for t, tree in enumerate(trees):
            values = tree["leaf_values"]
            if len(values) != 2 ** len(tree["splits"]):
                raise _Unsupported("leaf values do not match the tree depth")
            leaves[t, : len(values)] = values
        fill = np.array(
            [np.inf if f.get("nan_value_treatment") == "AsTrue" else -np.inf for f in float_info],
            dtype=np.float64,
        )
        tables = cls._category_tables(model, features, cat_info, categories, onehot, onehot_splits)
        distinct: dict[tuple[int, float], int] = {}
        uses: list[tuple[int, int, int]] = []  # (distinct split, tree, level)
        for t, tree in enumerate(trees):
            for d in range(len(tree["splits"])):
                key = (int(split_column[t, d]), float(split_border[t, d]))
                uses.append((distinct.setdefault(key, len(distinct)), t, d))
        weights = np.zeros((len(distinct), len(trees)), dtype=np.float32)
        for u, t, d in uses:
            weights[u, t] += 2**d
        return cls(
            float_positions=np.array([f["flat_feature_index"] for f in float_info], dtype=np.int64),
            nan_fill=fill,
            categories=tables,
            width=width,
            split_column=np.array([k[0] for k in distinct], dtype=np.intp),
            split_border=np.array([k[1] for k in distinct], dtype=np.float32),
            weights=weights,
            leaves=leaves.ravel(),
            scale=float(scale),
            bias=float(biases[0]),
        )

    @staticmethod
    def _category_tables(
        model: CatBoostClassifier,
        features: list[str],
        cat_info: list[dict[str, Any]],
        categories: Mapping[str, Sequence[str]],
        onehot: dict[tuple[int, int], int],
        onehot_splits: list[tuple[int, int, int, int]],
    ) -> tuple[tuple[int, dict[str, tuple[int, ...]]], ...]:
        """For each categorical feature, the indicator columns each known category sets.

        One probe row per known category, scored with ``calc_leaf_indexes``: bit ``d`` of a
        tree's leaf index is the outcome of its split ``d``, so a one-hot split's bit tells
        whether that category has the split's hash.
        """
        if not cat_info:
            return ()
        cat_positions = [c["flat_feature_index"] for c in cat_info]
        probes: list[tuple[int, str]] = []
        for index, info in enumerate(cat_info):
            known = categories.get(features[info["flat_feature_index"]])
            if known is None:
                if any(key[0] == index for key in onehot):
                    raise _Unsupported(
                        f"training categories of {features[info['flat_feature_index']]!r} unknown"
                    )
                continue
            probes.extend((index, str(value)) for value in known)
        tables: list[dict[str, tuple[int, ...]]] = [{} for _ in cat_info]
        if probes and onehot:
            filler = {i: next((v for j, v in probes if j == i), "") for i in range(len(cat_info))}
            rows = []
            for index, value in probes:
                row: list[Any] = [0.0] * len(features)
                for j, position in enumerate(cat_positions):
                    row[position] = value if j == index else filler[j]
                rows.append(row)
            leaf = np.asarray(model.calc_leaf_indexes(Pool(rows, cat_features=cat_positions)))
            matched: set[tuple[int, int]] = set()
            for r, (index, value) in enumerate(probes):
                columns = sorted(
                    {
                        onehot[(cat, value_hash)]
                        for t, d, cat, value_hash in onehot_splits
                        if cat == index and (leaf[r, t] >> d) & 1
                    }
                )
                matched.update(k for k in onehot if k[0] == index and onehot[k] in columns)
                if columns:
                    tables[index][value] = tuple(columns)
            if set(onehot) - matched:
                raise _Unsupported("some one-hot split matches no training category")
        return tuple((cat_positions[i], tables[i]) for i in range(len(cat_info)))

    def _disagreement(
        self, model: CatBoostClassifier, features: list[str], categories: Mapping[str, Sequence[str]]
    ) -> float:
        """Largest difference from CatBoost on rows that straddle every border and category."""
        rng = np.random.default_rng(0)
        n = 256
        info = json.loads(json.dumps(model.get_borders())) if hasattr(model, "get_borders") else {}
        cat_positions = {int(p) for p in model.get_cat_feature_indices()}
        rows: list[list[Any]] = [[0.0] * len(features) for _ in range(n)]
        for position, name in enumerate(features):
            if position in cat_positions:
                values = [*map(str, categories.get(name, [])), "never-seen-in-training", ""]
                for row in rows:
                    row[position] = values[int(rng.integers(len(values)))]
                continue
            borders = np.asarray(info.get(position, info.get(str(position), [])), dtype=np.float64)
            if borders.size == 0:  # a feature no tree splits on (constant in a small sample)
                borders = np.zeros(1)
            picks = rng.choice(borders, size=n) + rng.choice([-1e-3, 0.0, 1e-3], size=n)
            picks[rng.random(n) < 0.05] = np.nan
            for row, value in zip(rows, picks, strict=True):
                row[position] = float(value)
        expected = model.predict_proba(Pool(rows, cat_features=sorted(cat_positions)))
        return float(np.abs(self.predict_proba(rows) - expected).max())


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)  # no overflow for very negative x
    return e / (1.0 + e)


class _Unsupported(Exception):  # noqa: N818 - a reason, not an error: the caller falls back
    pass
