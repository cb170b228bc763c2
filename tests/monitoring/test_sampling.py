"""The adaptive sampler behind traffic profiles: every request while traffic is light, a
uniform sample of about the configured rate above it (statistical checks, fixed seeds)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from mlplug.monitoring.sampling import AdaptiveSampler


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run(sampler: AdaptiveSampler, clock: Clock, per_second: int, seconds: int, rows: int = 1) -> list[bool]:
    """Requests of ``rows`` rows, evenly spread at ``per_second`` requests a second."""
    kept = []
    for i in range(per_second * seconds):
        clock.now = i / per_second
        kept.append(sampler.keep(rows))
    return kept


def test_light_traffic_profiles_every_request() -> None:
    clock = Clock()
    sampler = AdaptiveSampler(200, seed=1, clock=clock)
    assert all(run(sampler, clock, per_second=150, seconds=30))
    assert sampler.probability == 1.0 and 140 < sampler.measured <= 151


def test_batches_count_their_rows_towards_the_rate() -> None:
    clock = Clock()
    sampler = AdaptiveSampler(200, seed=1, clock=clock)
    kept = run(sampler, clock, per_second=100, seconds=10, rows=10)  # 1,000 rows a second
    assert sampler.probability == pytest.approx(0.2, rel=0.02)
    steady = np.array(kept[100:])  # after the first interval measured the rate
    assert 0.16 < steady.mean() < 0.24


def test_above_the_rate_about_the_rate_is_profiled_as_a_uniform_sample() -> None:
    clock = Clock()
    sampler = AdaptiveSampler(200, seed=7, clock=clock)
    seconds, per_second = 60, 5000
    kept = np.array(run(sampler, clock, per_second=per_second, seconds=seconds))
    steady = kept[per_second:]
    # The first 200 rows are profiled in full, before the rate is known; then it is measured
    # at once, not after a whole second of every request.
    assert kept[:200].all() and kept[:per_second].sum() < 2 * 200 + 100
    expected = 200 * (seconds - 1)
    sd = np.sqrt(expected * (1 - 200 / per_second))
    assert abs(steady.sum() - expected) < 4 * sd, (steady.sum(), expected)
    # Uniform in time: the kept requests' positions are uniform over the window...
    positions = np.flatnonzero(steady) / len(steady)
    assert stats.kstest(positions, "uniform").pvalue > 0.01
    # ...and independent of the content: a value carried by each request is distributed
    # in the sample as in all the traffic.
    values = np.random.default_rng(3).lognormal(3, 1, len(steady))
    assert stats.ks_2samp(values[steady], values).pvalue > 0.01
    # Per second, the sample stays near the rate: no second is left out or over-sampled.
    per_sec = steady.reshape(seconds - 1, per_second).sum(axis=1)
    assert per_sec.min() > 140 and per_sec.max() < 260


def test_a_fixed_share_applies_on_top_and_rate_zero_means_no_limit() -> None:
    clock = Clock()
    unlimited = AdaptiveSampler(0, seed=2, clock=clock)
    assert all(run(unlimited, clock, per_second=5000, seconds=3))
    clock = Clock()
    share = AdaptiveSampler(0, 0.25, seed=3, clock=clock)
    kept = np.array(run(share, clock, per_second=1000, seconds=4))
    assert abs(kept.mean() - 0.25) < 4 * np.sqrt(0.25 * 0.75 / len(kept))


class CountingClock(Clock):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now


def test_a_busy_sampler_is_asked_about_the_kept_requests_only() -> None:
    """The caller leaves out the requests of each gap without asking: a sampled-out request
    reads no clock and draws no random number, and the rows it passes still count."""
    clock = CountingClock()
    sampler = AdaptiveSampler(200, seed=11, clock=clock)
    per_second, seconds = 5000, 20
    asked = kept = passed = skip = 0
    for i in range(per_second * seconds):
        clock.now = i / per_second
        if skip:
            skip -= 1
            passed += 1
            continue
        asked += 1
        keep, skip = sampler.admit(1, passed)
        passed = 0
        kept += keep
    assert clock.reads == asked + 1  # one read at construction
    expected = 200 * seconds + 200  # and the first 200 rows, before the rate is known
    assert abs(kept - expected) < 4 * np.sqrt(expected) + 50, (kept, expected)
    assert asked <= kept + 10 and asked < per_second * seconds / 10  # one question per kept request
    assert clock.reads < per_second * seconds / 10
    assert sampler.measured == pytest.approx(per_second, rel=0.01)  # passed rows were counted


def test_the_rate_is_measured_again_when_the_load_drops() -> None:
    clock = Clock()
    sampler = AdaptiveSampler(200, seed=4, clock=clock)
    busy = run(sampler, clock, per_second=5000, seconds=5)
    assert 0.02 < np.mean(busy[-5000:]) < 0.06
    quiet = []
    for i in range(100 * 5):  # then 100 requests a second: below the rate
        clock.now = 5 + i / 100
        quiet.append(sampler.keep(1))
    assert all(quiet[200:])  # every request again within two seconds of the drop


def test_a_tiny_share_still_rechecks_every_so_many_requests() -> None:
    clock = Clock()
    sampler = AdaptiveSampler(0, 1e-9, seed=5, recheck=100, clock=clock)
    kept, skip, asked = [], 0, 0
    for _ in range(10_000):
        if skip:
            skip -= 1
            kept.append(False)
            continue
        asked += 1
        keep, skip = sampler.admit(1, 0)
        kept.append(keep)
        assert skip <= 100
    assert asked >= 10_000 // 101 and not any(kept)


@pytest.mark.parametrize(
    "bad", [{"rate": -1}, {"rate": 10, "share": 0}, {"rate": 10, "share": 1.5}, {"rate": 10, "recheck": 0}]
)
def test_settings_are_validated(bad) -> None:
    with pytest.raises(ValueError):
        AdaptiveSampler(**bad)
