"""The Experiments section names the Ray node of each trial, and says when a record (an
older one, or a run whose trials did not report) does not know it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from mlplug.plugins import Plugins
from mlplug.reporting import build_report
from mlplug.tuning import Trial, node_label
from tests.reporting.contexts import toy_context
from tests.reporting.htmlcheck import parse

NODES = [("worker-a", "a1" * 28), ("worker-b", "b2" * 28), ("worker-a", "a1" * 28)]


def _experiments(trials_of: Callable[[list[Trial]], list[Trial]], plugins: Plugins) -> str:
    ctx = toy_context(trials=3)
    tuning = ctx.record.tuning
    assert tuning is not None
    record = replace(ctx.record, tuning=replace(tuning, trials=trials_of(tuning.trials)))
    report = build_report(replace(ctx, record=record), plugins)
    return " ".join(parse(report.html).section_text["experiments"].split())


def test_each_trial_names_its_node_and_the_facts_count_trials_per_node(mlplug_plugins: Plugins) -> None:
    def on_nodes(trials: list[Trial]) -> list[Trial]:
        return [replace(t, host=h, node_id=n) for t, (h, n) in zip(trials, NODES, strict=True)]

    text = _experiments(on_nodes, mlplug_plugins)
    assert "Ray nodes 2 (worker-a (a1a1a1a1): 2 trials, worker-b (b2b2b2b2): 1 trial)" in text
    assert text.count("worker-b (b2b2b2b2)") == 2  # the fact and the trial's row


def test_trials_without_a_node_say_so(mlplug_plugins: Plugins) -> None:
    assert "Ray nodes not recorded" in _experiments(list, mlplug_plugins)


def test_node_label() -> None:
    assert node_label("pod-7", "0123456789abcdef") == "pod-7 (01234567)"
    assert node_label("pod-7", None) == "pod-7" and node_label(None, None) is None
    assert Trial("t", {}, 0.5, 3, 1.0, False, node_id="ff" * 28).node == "? (ffffffff)"
