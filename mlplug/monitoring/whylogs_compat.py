"""The one place that imports whylogs.

whylogs 1.6.4 is its last release and still reads ``np.unicode_``, which numpy 2 removed;
the alias is restored before the import. Nothing else in mlplug imports whylogs, so the shim
cannot be bypassed, and whylogs (2-3 s to import) is loaded only when profiling starts.
"""

from __future__ import annotations

import json
import math
import os
import threading
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from mlplug.errors import MlplugError
from mlplug.monitoring.bounds import OutOfRange, add_counts, clip_out_of_range

_lock = threading.Lock()
#: Profile metadata mlplug writes (whylogs keeps string values and serialises them).
_OUT_OF_RANGE = "mlplug.out_of_range"
_SEEN_ROWS = "mlplug.seen_rows"


class ProfileError(MlplugError):
    """Bytes that are not a readable whylogs profile (empty, truncated, garbage)."""


@cache
def _why() -> Any:
    # whylogs phones home unless told not to; mlplug runs offline.
    os.environ.setdefault("WHYLOGS_NO_ANALYTICS", "True")
    with _lock:
        if not hasattr(np, "unicode_"):
            np.unicode_ = np.str_  # type: ignore[attr-defined]
        import whylogs

    return whylogs


def preload() -> None:
    """Import whylogs and run its first profile now (2-3 s), e.g. before a server reports
    ready: done lazily by the first flush, it would compete with live requests."""
    Profile.of(pd.DataFrame({"warm_up": [0.0]}))


@dataclass(frozen=True)
class NumericSketch:
    """A numeric column of a profile: counts and a KLL quantile sketch."""

    rows: int
    missing: int
    _kll: Any
    _mean: float | None = None

    @property
    def empty(self) -> bool:
        return self._kll is None or self._kll.is_empty()

    def quantiles(self, qs: list[float]) -> list[float]:
        return [float(v) for v in self._kll.get_quantiles(qs)]

    def pmf(self, split_points: list[float]) -> np.ndarray:
        """Mass in ``(-inf, s0), [s0, s1), ..., [sn, inf)``: one more bin than points."""
        return np.asarray(self._kll.get_pmf(split_points), dtype=float)

    @property
    def mean(self) -> float | None:
        """``None`` when unknown, or when a profile written before values were clipped
        (see :mod:`mlplug.monitoring.bounds`) holds an overflowed mean."""
        if self.empty or self._mean is None or not math.isfinite(float(self._mean)):
            return None
        return float(self._mean)


@dataclass(frozen=True)
class CategoricalSketch:
    """A string column of a profile: counts and frequent-item estimates."""

    rows: int
    missing: int
    #: Estimated count per value, for the most frequent values the sketch kept.
    counts: dict[str, float]


Sketch = NumericSketch | CategoricalSketch


class ProfileBuilder:
    """A running whylogs profile that frames are tracked into, chunk by chunk."""

    def __init__(self) -> None:
        _why()
        from whylogs.core import DatasetProfile

        self._profile = DatasetProfile()
        self._out_of_range: dict[str, OutOfRange] = {}

    def track(self, frame: pd.DataFrame) -> None:
        frame, counts = clip_out_of_range(frame)
        self._profile.track(pandas=frame)
        if counts:
            self._out_of_range = add_counts(self._out_of_range, counts)

    def build(self, seen_rows: int | None = None) -> Profile:
        """The profile so far; ``seen_rows``: rows the profiled ones were sampled from."""
        return Profile(self._profile.view()).with_counts(self._out_of_range, seen_rows)


class Profile:
    """A whylogs profile view; merge, serialize and read its columns, and the counts mlplug
    keeps in its metadata: values clipped before profiling (per column) and the rows the
    profiled ones were sampled from."""

    def __init__(self, view: Any) -> None:
        self._view = view

    @classmethod
    def of(cls, frame: pd.DataFrame) -> Profile:
        frame, counts = clip_out_of_range(frame)
        return cls(_why().log(pandas=frame).profile().view()).with_counts(counts)

    @classmethod
    def empty(cls) -> Profile:
        return cls.of(pd.DataFrame())

    @classmethod
    def from_bytes(cls, data: bytes) -> Profile:
        """Raises :class:`ProfileError` for anything that is not a whole profile."""
        from whylogs.core import DatasetProfileView

        _why()
        if not data:
            raise ProfileError("empty file (0 bytes)")
        try:
            profile = cls(DatasetProfileView.deserialize(data))
            profile.out_of_range()  # metadata mlplug cannot read is damage too
            profile.seen_rows()
        except Exception as exc:  # whylogs raises DeserializationError, OSError, protobuf errors
            raise ProfileError(f"not a readable whylogs profile ({len(data):,} bytes): {exc}") from None
        return profile

    def to_bytes(self) -> bytes:
        return bytes(self._view.serialize())

    def merge(self, other: Profile) -> Profile:
        counts = add_counts(self.out_of_range(recorded_only=True), other.out_of_range(recorded_only=True))
        seen = self.seen_rows() + other.seen_rows()
        # whylogs' merge updates the left view's metadata dict in place; keep ours intact.
        left = dict(self._view.metadata)
        merged = self._view.merge(other._view)
        self._view.metadata.clear()
        self._view.metadata.update(left)
        return Profile(merged).with_counts(counts, seen)

    def with_counts(self, out_of_range: dict[str, OutOfRange], seen_rows: int | None = None) -> Profile:
        """This profile with mlplug's counts set (a new metadata dict on the same view)."""
        metadata = {k: v for k, v in self._view.metadata.items() if k not in (_OUT_OF_RANGE, _SEEN_ROWS)}
        if out_of_range:
            metadata[_OUT_OF_RANGE] = json.dumps({k: v.to_dict() for k, v in sorted(out_of_range.items())})
        if seen_rows is not None:
            metadata[_SEEN_ROWS] = str(int(seen_rows))
        self._view._metadata = metadata  # whylogs has no setter; the view owns a plain dict
        return self

    def out_of_range(self, recorded_only: bool = False) -> dict[str, OutOfRange]:
        """Values clipped before profiling, per column; plus (unless ``recorded_only``) the
        infinities whylogs counted in profiles written before mlplug clipped them."""
        text = self._view.metadata.get(_OUT_OF_RANGE)
        counts = {k: OutOfRange(**v) for k, v in json.loads(text).items()} if text else {}
        if recorded_only:
            return counts
        for name in self.columns:
            metric = self._view.get_column(name).get_metric("counts")
            infinite = int(metric.inf.value) if metric is not None else 0
            if infinite:
                counts = add_counts(counts, {name: OutOfRange(non_finite=infinite)})
        return counts

    def seen_rows(self) -> int:
        """Rows the profiled rows were a sample of (the rows themselves when not sampled)."""
        text = self._view.metadata.get(_SEEN_ROWS)
        return int(text) if text is not None else self.rows()

    def column_types(self, name: str) -> dict[str, int]:
        """How many values of the column whylogs saw per type (``integral``, ``fractional``,
        ``boolean``, ``string``, ``object``, ``tensor``); nulls are not counted."""
        column = self._view.get_column(name)
        metric = column.get_metric("types") if column is not None else None
        if metric is None:
            return {}
        return {k: int(v) for k, v in metric.to_summary_dict().items()}

    @property
    def columns(self) -> list[str]:
        return list(self._view.get_columns())

    def rows(self) -> int:
        """Rows logged: the largest column count (every column sees every row)."""
        return max((self._count(c)[0] for c in self.columns), default=0)

    def _count(self, name: str) -> tuple[int, int]:
        counts = self._view.get_column(name).get_metric("counts")
        if counts is None:
            return 0, 0
        return int(counts.n.value), int(counts.null.value)

    def sketch(self, name: str, kind: str) -> Sketch | None:
        """The column as ``numeric`` or ``categorical``; ``None`` when it was never logged."""
        column = self._view.get_column(name)
        if column is None:
            return None
        rows, missing = self._count(name)
        if kind == "numeric":
            dist = column.get_metric("distribution")
            if dist is None:
                return NumericSketch(rows, missing, None)
            return NumericSketch(rows, missing, dist.kll.value, dist.mean.value)
        items = column.get_metric("frequent_items")
        counts: dict[str, float] = {}
        if items is not None:
            for item in items.to_summary_dict().get("frequent_strings", []):
                counts[str(item.value)] = float(item.est)
        return CategoricalSketch(rows, missing, counts)
