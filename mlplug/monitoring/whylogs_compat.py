"""The one place that imports whylogs.

whylogs 1.6.4 is its last release and still reads ``np.unicode_``, which numpy 2 removed;
the alias is restored before the import. Nothing else in mlplug imports whylogs, so the shim
cannot be bypassed, and whylogs (2-3 s to import) is loaded only when profiling starts.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

_lock = threading.Lock()


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
        return None if self.empty or self._mean is None else float(self._mean)


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

    def track(self, frame: pd.DataFrame) -> None:
        self._profile.track(pandas=frame)

    def build(self) -> Profile:
        return Profile(self._profile.view())


class Profile:
    """A whylogs profile view; merge, serialize and read its columns."""

    def __init__(self, view: Any) -> None:
        self._view = view

    @classmethod
    def of(cls, frame: pd.DataFrame) -> Profile:
        return cls(_why().log(pandas=frame).profile().view())

    @classmethod
    def empty(cls) -> Profile:
        return cls.of(pd.DataFrame())

    @classmethod
    def from_bytes(cls, data: bytes) -> Profile:
        from whylogs.core import DatasetProfileView

        _why()
        return cls(DatasetProfileView.deserialize(data))

    def to_bytes(self) -> bytes:
        return bytes(self._view.serialize())

    def merge(self, other: Profile) -> Profile:
        return Profile(self._view.merge(other._view))

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
