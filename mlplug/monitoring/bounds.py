"""Numbers a profile cannot hold as they are: infinities and finite values so large that
whylogs' running sums overflow.

whylogs keeps a mean and a variance per numeric column. Two rows with an amount of 1.7e308
(a valid, finite JSON number) turn the mean into ``inf`` and the variance into ``nan``, and
merging poisons every later profile of the window; the drift result then cannot be written
as JSON. So before a frame is profiled, every numeric value beyond :data:`EXTREME` in
magnitude (infinities included) is counted per column and clipped to ``±EXTREME``: it stays
in the distribution as a very large value (it lands in the outer bin, where drift shows),
the sketches' arithmetic stays finite, and the counts travel with the profile as evidence.
NaN is not counted here: in mlplug's frames it means a missing value, which the profile
already counts and drift scores as a bin of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Beyond this magnitude a value is counted as extreme and clipped. A square stays below
#: 1e200, so sums of squares over more rows than any window holds stay finite.
EXTREME = 1e100


@dataclass(frozen=True)
class OutOfRange:
    """Values of one column that were clipped before profiling."""

    #: ``inf`` or ``-inf``.
    non_finite: int = 0
    #: Finite, but beyond ``±EXTREME``.
    extreme: int = 0

    @property
    def total(self) -> int:
        return self.non_finite + self.extreme

    def __add__(self, other: OutOfRange) -> OutOfRange:
        return OutOfRange(self.non_finite + other.non_finite, self.extreme + other.extreme)

    def to_dict(self) -> dict[str, int]:
        return {"non_finite": self.non_finite, "extreme": self.extreme}


def add_counts(into: dict[str, OutOfRange], more: dict[str, OutOfRange]) -> dict[str, OutOfRange]:
    """Per-column sums of two count maps (a new dict)."""
    total = dict(into)
    for name, counts in more.items():
        total[name] = total.get(name, OutOfRange()) + counts
    return total


def clip_out_of_range(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, OutOfRange]]:
    """``frame`` with every numeric value beyond ``±EXTREME`` clipped, and what was clipped
    per column. The frame is copied only when something had to be clipped."""
    counts: dict[str, OutOfRange] = {}
    clipped: pd.DataFrame | None = None
    for name in frame.columns:
        column = frame[name]
        if not pd.api.types.is_float_dtype(column.dtype):
            continue
        values = column.to_numpy()
        with np.errstate(invalid="ignore"):
            beyond = np.abs(values) > EXTREME  # NaN compares False: missing stays missing
        if not beyond.any():
            continue
        infinite = int(np.isinf(values[beyond]).sum())
        counts[str(name)] = OutOfRange(non_finite=infinite, extreme=int(beyond.sum()) - infinite)
        if clipped is None:
            clipped = frame.copy()
        clipped[name] = np.where(beyond, np.sign(values) * EXTREME, values)
    return (frame if clipped is None else clipped), counts
