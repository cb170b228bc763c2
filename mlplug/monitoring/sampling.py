"""Which answered requests a server profiles: every one while traffic is light, a uniform
sample of about ``rate`` rows per second above that.

Profiling every row of a saturated server costs 15-27 % of its throughput (whylogs runs on
the same core), while drift compares shares per bin and needs a few thousand rows a window,
not millions. So the sampler measures the rows answered per second over the last interval
and keeps each request with probability ``rate / measured`` (1 while the measured rate is at
most ``rate``). Each request of an interval has the same chance whatever its content, so a
window's profile is a uniform sample of its traffic as long as the load is steady; when the
load changes within a window, busy seconds are sampled more thinly than quiet ones (each
second contributes at most about ``rate`` rows). Every request counts as seen, so a profile
records how many rows its profiled rows were drawn from.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable


class AdaptiveSampler:
    """Not thread-safe: one observer thread calls :meth:`keep`."""

    def __init__(
        self,
        rate: float,
        share: float = 1.0,
        *,
        seed: int | None = None,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate < 0:
            raise ValueError(f"rate must be >= 0 rows per second (0: no limit), got {rate}")
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], got {share}")
        #: Rows per second profiled in full; 0 means no limit.
        self.rate = rate
        #: A fixed share on top (``MLPLUG_PROFILE_SAMPLE``).
        self.share = share
        self._interval = interval
        self._clock = clock
        self._random = random.Random(seed)
        self._started = clock()
        self._rows = 0
        #: Rows per second answered in the last complete interval.
        self.measured = 0.0

    @property
    def probability(self) -> float:
        """The chance each request has now of being profiled."""
        if self.rate <= 0 or self.measured <= self.rate:
            return self.share
        return self.share * self.rate / self.measured

    def keep(self, rows: int) -> bool:
        """Count a request of ``rows`` rows; ``True`` when it is to be profiled."""
        now = self._clock()
        elapsed = now - self._started
        if elapsed >= self._interval:
            self.measured = self._rows / elapsed
            self._started, self._rows = now, 0
        self._rows += rows
        chance = self.probability
        return chance >= 1.0 or self._random.random() < chance
