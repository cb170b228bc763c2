"""Which answered requests a server profiles: every one while traffic is light, a uniform
sample of about ``rate`` rows per second above that.

Profiling every row of a saturated server costs 15-27 % of its throughput (whylogs runs on
the same core), while drift compares shares per bin and needs a few thousand rows a window,
not millions. So the sampler measures the rows answered per second over the last interval
and keeps each request with probability ``rate / measured`` (1 while the measured rate is at
most ``rate``). A burst is measured as soon as more than ``rate`` rows came in an
interval, so at most about ``rate`` rows are profiled before the sampler knows the load.
Each request of an interval has the same chance whatever its content, so a window's profile
is a uniform sample of its traffic as long as the load is steady; when the load changes
within a window, busy seconds are sampled more thinly than quiet ones (each second
contributes at most about ``rate`` rows). Every request counts as seen, so a profile records
how many rows its profiled rows were drawn from.

Drawing a random number (and reading the clock) for every request costs a busy server more
than the rows it keeps, so the sampler draws once per kept request how many requests to
leave out before the next one (a geometric gap: the same independent chance per request,
drawn in one go) and measures the rate when it is asked again. The caller passes the left-out
requests' rows with its next question; re-asking at least every ``recheck`` requests bounds
how long a change of load goes unmeasured.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable


class AdaptiveSampler:
    """Not thread-safe: one caller (the tap's request path) asks :meth:`admit`."""

    def __init__(
        self,
        rate: float,
        share: float = 1.0,
        *,
        seed: int | None = None,
        interval: float = 1.0,
        recheck: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate < 0:
            raise ValueError(f"rate must be >= 0 rows per second (0: no limit), got {rate}")
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], got {share}")
        if recheck < 1:
            raise ValueError(f"recheck must be >= 1 request, got {recheck}")
        #: Rows per second profiled in full; 0 means no limit.
        self.rate = rate
        #: A fixed share on top (``MLPLUG_PROFILE_SAMPLE``).
        self.share = share
        #: At most this many requests are left out before the rate is measured again.
        self.recheck = recheck
        self._interval = interval
        self._clock = clock
        self._random = random.Random(seed)
        self._started = clock()
        self._rows = 0
        #: The request asked about next was drawn as kept by the last gap.
        self._due = False
        #: For :meth:`keep`: requests still to leave out, and their rows.
        self._skip = 0
        self._passed = 0
        #: Rows per second answered in the last complete interval.
        self.measured = 0.0

    @property
    def probability(self) -> float:
        """The chance each request has now of being profiled."""
        if self.rate <= 0 or self.measured <= self.rate:
            return self.share
        return self.share * self.rate / self.measured

    def admit(self, rows: int, passed: int = 0) -> tuple[bool, int]:
        """Count a request of ``rows`` rows and the ``passed`` rows left out since the last
        call; whether this request is profiled, and how many requests to leave out (counting
        their rows) before asking again."""
        now = self._clock()
        self._rows += passed
        elapsed = now - self._started
        # While every request is kept, a burst is measured as soon as more than ``rate``
        # rows came, not a whole interval later: at a saturating load the first second
        # in full would be thousands of rows of profiling work at once.
        if elapsed >= self._interval or (
            self.rate > 0 and self.measured <= self.rate < self._rows / self._interval and elapsed > 0
        ):
            self.measured = self._rows / elapsed
            self._started, self._rows = now, 0
        self._rows += rows
        chance = self.probability
        if chance >= 1.0:
            self._due = False
            return True, 0
        if not self._due:
            # Asked without a kept request drawn (the start, a recheck, after every request
            # was kept): a fresh draw from this one on. The gap is memoryless, so starting
            # over here leaves every request the same chance.
            gap = self._gap(chance)
            if gap:
                return False, self._leave_out(gap - 1)
        return True, self._leave_out(self._gap(chance))

    def keep(self, rows: int) -> bool:
        """Count a request of ``rows`` rows; ``True`` when it is to be profiled (for callers
        that ask about every request: :meth:`admit` with the gaps handled here)."""
        if self._skip:
            self._skip -= 1
            self._passed += rows
            return False
        kept, self._skip = self.admit(rows, self._passed)
        self._passed = 0
        return kept

    def _gap(self, chance: float) -> int:
        """Requests left out before the next kept one: geometric, each kept with ``chance``."""
        # 1 - random() is in (0, 1]: log() of it is finite.
        return int(math.log(1.0 - self._random.random()) / math.log1p(-chance))

    def _leave_out(self, gap: int) -> int:
        """Requests to leave out before asking again: ``gap``, or ``recheck`` at most (then
        the next question starts a fresh draw)."""
        self._due = gap < self.recheck
        return min(gap, self.recheck)
