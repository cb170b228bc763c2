"""Progress on the terminal: one rewritten line on a terminal, a few lines elsewhere; and
``fit_model`` hands ``work`` only to models that take it."""

from __future__ import annotations

import io
from typing import Any

from mlplug.progress import Progress, artifact_key
from mlplug.task import fit_model
from tests.toy_task import ConstantModel, ToyTask


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_pipe_gets_a_line_per_quarter_not_per_update() -> None:
    out = io.StringIO()
    with Progress("tuning toy", "toy-tuning", "trials", stream=out, delay=0) as shown:
        for done in range(1, 1001):
            shown.update(done, 1000, f"best {done / 1000:.3f}")
    lines = out.getvalue().splitlines()
    assert lines == [
        "tuning toy:  25% (250/1000 trials, best 0.250)",
        "tuning toy:  50% (500/1000 trials, best 0.500)",
        "tuning toy:  75% (750/1000 trials, best 0.750)",
        "tuning toy: 100% (1000/1000 trials, best 1.000)",
    ]


def test_a_terminal_gets_one_line_rewritten_at_most_five_times_a_second() -> None:
    out, clock = Terminal(), Clock()
    with Progress("fitting", "toy-fit", "steps", stream=out, clock=clock, delay=0) as shown:
        for step in range(1, 101):
            clock.now = step * 0.01  # 100 steps in one second
            shown.update(step, 100, "epoch 1/1")
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("(100/100 steps, epoch 1/1)\x1b[K\n")
    assert 2 <= text.count("\r") <= 7  # throttled: every 0.2 s, plus the final line


def test_quick_work_shows_nothing_and_slow_work_shows_from_when_it_is_slow() -> None:
    quick, clock = io.StringIO(), Clock()
    with Progress("fitting", "toy-fit", "steps", stream=quick, clock=clock, delay=1.0) as shown:
        for step in range(1, 11):
            clock.now = step * 0.05
            shown.update(step, 10)
    assert quick.getvalue() == ""
    slow, clock = io.StringIO(), Clock()
    with Progress("fitting", "toy-fit", "steps", stream=slow, clock=clock, delay=1.0) as shown:
        for step in range(1, 11):
            clock.now = step * 0.5
            shown.update(step, 10)
    assert slow.getvalue().splitlines() == [
        "fitting:  30% (3/10 steps)",  # the first quarter passed after a second of work
        "fitting:  50% (5/10 steps)",
        "fitting:  80% (8/10 steps)",
        "fitting: 100% (10/10 steps)",
    ]


def test_work_that_never_reports_shows_nothing() -> None:
    out = io.StringIO()
    with Progress("fitting", "toy-fit", stream=out):
        pass
    assert out.getvalue() == ""


def test_a_failure_leaves_the_last_state_and_ends_the_line() -> None:
    out = Terminal()
    try:
        with Progress("merging", "toy-profiles", "profiles", stream=out, delay=0) as shown:
            shown.update(1, 4)
            raise RuntimeError("store gone")
    except RuntimeError:
        pass
    assert out.getvalue().endswith("(1/4 profiles)\x1b[K\n")


def test_artifact_keys_are_what_prefect_accepts() -> None:
    assert artifact_key("Churn_v2", "tuning") == "churn-v2-tuning"


class WorkingModel(ConstantModel):
    def fit(self, train, valid=None, progress=None, work=None) -> None:
        super().fit(train, valid, progress)
        for step in range(1, 4):
            work(step, 3, "epoch 1/1")


def test_fit_model_passes_work_only_to_a_fit_that_takes_it() -> None:
    data = ToyTask().synthesize(50)
    seen: list[tuple[Any, ...]] = []
    fit_model(WorkingModel(), data, work=lambda *report: seen.append(report))
    assert seen == [(1, 3, "epoch 1/1"), (2, 3, "epoch 1/1"), (3, 3, "epoch 1/1")]
    fit_model(ConstantModel(), data, work=lambda *report: seen.append(report))  # no work parameter
    assert len(seen) == 3
