"""Monitor reports: the drift section on real comparisons (whylogs profiles of generated
traffic), the environment beside it, and the trigger a refit report shows."""

from __future__ import annotations

import copy
import json
import re

import pytest

from mlplug.monitoring.drift import DRIFT, POSSIBLE_DRIFT, DriftResult
from mlplug.plugins import Plugins, new_plugins
from mlplug.registry import Registry
from mlplug.reporting import Report, ReportContext, build_report, html
from mlplug.reporting.sections import drift as drift_section
from mlplug.task import Metrics
from tests.reporting.contexts import PIP_OK, TRAFFIC_SCHEMA, drift_result, toy_context
from tests.reporting.htmlcheck import Parsed, parse
from tests.toy_task import ConstantModel, ToyTask

TRAIN_SECTIONS = ["data", "performance", "experiments", "business", "environment"]
#: The first alt text of each distribution plot, in the order the report draws them.
_PLOT_ALT = re.compile(r'alt="distribution of ([^"]+), reference against current"')


@pytest.fixture(scope="module")
def plugins() -> Plugins:
    return new_plugins(load_entry_points=False)


@pytest.fixture(scope="module")
def drifted() -> DriftResult:
    return drift_result(drift=1.0)


@pytest.fixture(scope="module")
def drifted_report(drifted: DriftResult, plugins: Plugins) -> Report:
    return build_report(monitor_context(drifted, plugins), plugins)


def monitor_context(result: DriftResult, plugins: Plugins, **kwargs) -> ReportContext:
    return ReportContext.for_monitoring(
        task_type=ToyTask("toy"), version=None, drift=result, pip_check=PIP_OK, plugins=plugins, **kwargs
    )


def flat(text: str) -> str:
    return " ".join(text.split())


def row_pattern(column) -> str:
    """A column's table row as the reader sees it: name, source, kind, score, noise, category."""
    words = drift_section.category_words(column.category)
    return (
        rf"{re.escape(column.name)} {column.source} {column.kind} {column.score:.3f} "
        rf"{column.noise:.3f} {words} "
    )


def checked(report: Report) -> Parsed:
    assert report.failed == []
    parsed = parse(report.html)
    assert parsed.problems() == []
    return parsed


def test_monitor_report_has_the_drift_section_and_the_environment(drifted_report: Report) -> None:
    assert [s.name for s in drifted_report.sections] == ["drift", "environment"]
    assert drifted_report.title == "toy — monitoring report"
    parsed = checked(drifted_report)
    environment = flat(parsed.section_text["environment"])
    assert "Facts recorded during this monitoring run." in environment
    assert "pip check" in environment and "version at training" not in environment


def test_drift_section_states_the_decision_and_its_inputs(drifted, drifted_report) -> None:
    assert drifted.drifted and drifted.decision.startswith("drift:")  # the data must really drift
    text = flat(parse(drifted_report.html).section_text["drift"])
    assert "Drift: the traffic v3 answered no longer looks like its reference data." in text
    assert f"Decision: {drifted.decision}." in text
    assert "window 2024-04-30 12:00 UTC to 2024-05-01 12:00 UTC (24 h)" in text
    assert "current traffic 1,000 rows profiled (every row answered), 4 profiles merged" in text
    assert "reference 2,000 rows (the holdout of v3's training run)" in text
    drifted_inputs = len(drifted.drifted_inputs)
    assert (
        f"drifted input columns {drifted_inputs} of 5 ({drifted.share:.1%}); the data counts as "
        "drifted from 25% of them, or when an output drifts" in text
    )
    assert "possible drift from a Hellinger distance of 0.07, drift from 0.10" in text
    assert "rows needed for a decision 500" in text
    # The verdict box is red, and the markdown summary says the same in one line.
    assert '<div class="note error"><strong>Drift: the traffic v3' in drifted_report.html
    assert f"- drift of v3: **drift**; {drifted_inputs} of 5 input columns drifted" in drifted_report.markdown


def test_every_column_has_a_row_with_its_score_sorted_highest_first(drifted, drifted_report) -> None:
    text = flat(parse(drifted_report.html).section_text["drift"])
    assert len(drifted.columns) == 7  # amount, channel, note.{chars,words,lines}, prediction, score
    positions = {}
    for column in drifted.columns:
        found = re.search(row_pattern(column), text)
        assert found, f"no table row for {column.name}: {row_pattern(column)}"
        positions[column.name] = found.start()
    by_position = sorted(drifted.columns, key=lambda c: positions[c.name])
    scores = [c.score for c in by_position]
    assert scores == sorted(scores, reverse=True)
    # Missing shares and means, reference against current: generated traffic leaves amounts empty.
    amount = next(c for c in drifted.columns if c.name == "amount")
    assert amount.current_missing > 0.05
    missing = f"{amount.reference_missing:.1%} {amount.current_missing:.1%}"
    assert re.search(rf"amount input numeric \S+ \S+ drift {re.escape(missing)} \S+ \S+ ", text)
    # Categories as coloured badges; drifted rows highlighted.
    html = drifted_report.html
    assert html.count('<span class="badge error">drift</span>') == len(
        [c for c in drifted.columns if c.category == DRIFT]
    )
    assert '<span class="badge ok">no drift</span>' in html  # note.lines: always one line


def test_distribution_plots_are_embedded_drifted_columns_first(drifted, drifted_report) -> None:
    parsed = parse(drifted_report.html)
    plottable = [c for c in drifted.columns if c.distribution is not None]
    assert len(plottable) == len(drifted.columns) < drift_section.MAX_PLOTS
    assert parsed.section_images["drift"] == 1 + len(plottable)  # the score overview, then each column
    drawn = _PLOT_ALT.findall(drifted_report.html)
    assert sorted(drawn) == sorted(c.name for c in plottable)
    categories = [next(c.category for c in plottable if c.name == name) for name in drawn]
    first_other = next(i for i, cat in enumerate(categories) if cat != DRIFT)
    assert all(cat != DRIFT for cat in categories[first_other:])
    text = flat(parsed.section_text["drift"])
    assert "not plotted" not in text
    # Captions give the sizes and the means the plot compares.
    assert "input, categorical; reference 2,000 rows, current 1,000." in text


def test_drifted_columns_are_drawn_before_higher_scores_that_did_not_drift(
    drifted, plugins, monkeypatch
) -> None:
    # A large score can stay below 2.5 times a large noise; such a column must not push a
    # drifted one out of the plots.
    result = copy.deepcopy(drifted)
    top = max(result.columns, key=lambda c: c.score or 0)
    top.category = POSSIBLE_DRIFT
    monkeypatch.setattr(drift_section, "MAX_PLOTS", 2)
    output = drift_section.DriftSection().render(monitor_context(result, plugins))
    assert output is not None
    drawn = _PLOT_ALT.findall(html.join(output.blocks).markup)
    still_drifted = sorted(
        (c for c in result.columns if c.category == DRIFT), key=lambda c: (-(c.score or 0), c.name)
    )
    assert drawn == [c.name for c in still_drifted[:2]] and top.name not in drawn


def test_no_drift_reads_as_no_drift_and_extra_plots_are_counted(plugins, monkeypatch) -> None:
    result = drift_result(drift=0.0, seed=11)
    assert not result.drifted and result.decision.startswith("no drift")
    monkeypatch.setattr(drift_section, "MAX_PLOTS", 3)
    report = build_report(monitor_context(result, plugins, decision="nothing to do"), plugins)
    parsed = checked(report)
    text = flat(parsed.section_text["drift"])
    assert "No drift: the traffic v3 answered still looks like its reference data." in text
    assert "Drift: the traffic" not in text
    assert f"Decision: {result.decision}." in text and "Action taken: nothing to do." in text
    assert '<div class="note ok"><strong>No drift' in report.html
    assert "drifted outputs none" in text
    assert "4 more columns with lower scores are not plotted (limit 3)" in text
    assert parsed.section_images["drift"] == 1 + 3
    # With nothing drifted, the highest scores are drawn.
    drawn = _PLOT_ALT.findall(report.html)
    ranked = sorted(result.columns, key=lambda c: -(c.score or 0))
    assert [next(c.score for c in result.columns if c.name == n) for n in drawn] == [
        c.score for c in ranked[:3]
    ]
    assert "- drift of v3: **no drift**; 0 of 5 input columns drifted" in report.markdown


def test_too_little_traffic_gives_no_decision(plugins, monkeypatch) -> None:
    result = drift_result(rows=100, drift=1.0)
    assert not result.drifted and result.decision.startswith("no decision")
    monkeypatch.setattr(drift_section, "MAX_PLOTS", 1)
    report = build_report(monitor_context(result, plugins), plugins)
    text = flat(checked(report).section_text["drift"])
    assert (
        "No decision: 100 rows of traffic in the window, fewer than the 500 a stable comparison "
        "needs. The scores below are indicative only." in text
    )
    assert '<div class="note warning"><strong>No decision' in report.html
    for column in result.columns:  # still scored, for whoever looks
        assert re.search(row_pattern(column), text), column.name
    assert "**no decision** (too little traffic)" in report.markdown


def test_drift_json_round_trip_renders_the_same(drifted: DriftResult, plugins, monkeypatch) -> None:
    monkeypatch.setattr(drift_section, "MAX_PLOTS", 2)
    stored = json.dumps(drifted.to_dict(), allow_nan=False)  # drift.json is plain JSON
    reloaded = DriftResult.from_dict(json.loads(stored))
    assert reloaded == drifted
    section = drift_section.DriftSection()
    original = section.render(monitor_context(drifted, plugins))
    again = section.render(monitor_context(reloaded, plugins))
    assert original is not None and again is not None
    assert [b.markup for b in again.blocks] == [b.markup for b in original.blocks]
    assert again.tables == original.tables
    # The table artifact is plain JSON, highest score first (KLL sketches are randomised, so
    # which of two near-equal columns leads differs between runs; the score order does not).
    rows = json.loads(json.dumps(original.tables[0].rows, allow_nan=False))
    assert rows[0]["score"] == round(max(c.score or 0 for c in drifted.columns), 3)


def test_a_monitor_report_without_a_result_says_so(plugins) -> None:
    ctx = ReportContext(task="toy", task_type=ToyTask(), kind="monitor", pip_check=PIP_OK)
    report = build_report(ctx, plugins)
    assert [s.name for s in report.sections] == ["drift", "environment"]
    assert "This report holds no drift result." in checked(report).section_text["drift"]


def test_rare_values_are_folded_into_one_bar() -> None:
    labels = [f"v{i}" for i in range(20)]
    reference = [0.01] * 18 + [0.41, 0.41]
    current = [0.05] * 20
    shown, ref, cur = drift_section._fold_rare(labels, reference, current)
    assert len(shown) == drift_section.MAX_CATEGORIES
    assert shown[-1] == "(6 other values)" and {"v18", "v19"} <= set(shown)
    assert sum(ref) == pytest.approx(1.0) and sum(cur) == pytest.approx(1.0)


# -- refit: the trigger ------------------------------------------------------------------


def test_refit_report_shows_why_it_ran(plugins) -> None:
    trigger = "drift: 3 of 5 input columns drifted (amount (0.39)) (event 6f1c)"
    ctx = toy_context(trials=0, kind="refit", trigger=trigger)
    assert (ctx.kind, ctx.trigger) == ("refit", trigger)
    assert ctx.environment_source == "recorded during this refit run"
    # The training sections render for refits; the report itself is cheap without data.
    ctx.dataset, ctx.predictions = None, None
    report = build_report(ctx, plugins)
    assert [s.name for s in report.sections] == TRAIN_SECTIONS
    assert report.title == "toy — refit report"
    parsed = checked(report)
    assert flat(parsed.section_text["report-trigger"]) == f"Why this refit {trigger}"
    assert report.html.index('id="report-trigger"') < report.html.index('id="section-data"')
    assert f"- why this refit: {trigger}" in report.markdown
    plain = build_report(ReportContext(task="toy", task_type=ToyTask(), pip_check=PIP_OK), plugins)
    assert "report-trigger" not in parse(plain.html).ids and "why this" not in plain.markdown


# -- contexts from a registry ------------------------------------------------------------


@pytest.fixture
def registry(mlplug_store, tmp_path) -> Registry:
    """Two committed toy versions; v1 is the champion, v2 a refit with its trigger."""
    reg = Registry(mlplug_store)
    data = ToyTask("toy").synthesize(50)
    ref = reg.put_dataset("toy", data)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    ConstantModel(0.4).save(model_dir)
    for info in ({}, {"run_kind": "refit", "trigger": "drift: amount moved (event 6f1c)"}):
        reg.register_model(
            "toy",
            model_dir,
            kind="model",
            params={},
            metrics=Metrics({"accuracy": 0.6}, "accuracy"),
            dataset_hash=ref.hash,
            schema=TRAFFIC_SCHEMA,
            info=info,
        )
    reg.set_alias("toy", 1, expected=None, reason="first")
    return reg


def test_for_monitoring_knows_the_champion_and_history(registry: Registry, plugins, monkeypatch) -> None:
    monkeypatch.setattr(drift_section, "MAX_PLOTS", 0)
    v2 = registry.model("toy", 2)
    result = drift_result(drift=1.0, version=2)
    ctx = ReportContext.for_monitoring(
        task_type=ToyTask("toy"),
        version=v2,
        drift=result,
        registry=registry,
        notes=["2 profiles were unreadable"],
        pip_check=PIP_OK,
        plugins=plugins,
    )
    assert ctx.kind == "monitor" and ctx.drift is result and ctx.created_at == result.created_at
    assert [v.version for v in ctx.history] == [1] and ctx.current_champion == 1
    assert ctx.environment["python"] and ctx.plugins == plugins.infos()
    assert ctx.dataset_hash == v2.dataset_hash and ctx.notes == ["2 profiles were unreadable"]
    report = build_report(ctx, plugins)
    parsed = checked(report)
    assert report.title == "toy v2 — monitoring report"
    assert "v2 (model, registered " in parsed.section_text["drift"]
    assert "not the champion (v1 is)" in parsed.section_text["drift"]
    assert "2 profiles were unreadable" in parsed.section_text["report-notes"]
    # A result of another version is reported, not hidden.
    other = ReportContext.for_monitoring(
        task_type=ToyTask("toy"), version=v2, drift=drift_result(drift=1.0), pip_check=PIP_OK, plugins=plugins
    )
    assert other.notes == ["the drift result compares v3, not the reported v2"]


def test_from_store_reads_the_run_kind_and_trigger(registry: Registry, plugins) -> None:
    ctx = ReportContext.from_store(registry, ToyTask("toy"), 2, pip_check=PIP_OK, plugins=plugins)
    assert (ctx.kind, ctx.trigger) == ("refit", "drift: amount moved (event 6f1c)")
    first = ReportContext.from_store(registry, ToyTask("toy"), 1, pip_check=PIP_OK, plugins=plugins)
    assert (first.kind, first.trigger) == ("train", None)
