"""Sections as plugins, and what the builtin sections render, on in-memory contexts (fast:
no Prefect, no store)."""

from __future__ import annotations

import json
import logging
import re

import numpy as np
import pandas as pd
import pytest

import mlplug
from mlplug.plugins import Plugins
from mlplug.reporting import REPORT_KINDS, ReportContext, ReportSection, SectionOutput, build_report, html
from mlplug.reporting import format as fmt
from mlplug.task import Metrics
from tests.reporting.contexts import PIP_OK, record_of, text_dataset, toy_context
from tests.reporting.htmlcheck import parse
from tests.toy_task import ToyTask

BUILTIN = ["data", "performance", "experiments", "business", "environment"]
#: Builtin sections of monitor reports (the environment is in both).
MONITOR_BUILTIN = ["drift"]


class Extra(ReportSection):
    name = "extra"
    title = "Extra facts"
    order = 35

    def render(self, ctx):
        return SectionOutput([html.paragraph(f"{ctx.task} has extra facts")], summary=["extra: yes"])


class Boom(ReportSection):
    name = "boom"
    title = "Boom"
    order = 15

    def render(self, ctx):
        raise ValueError("the section exploded")


class Silent(ReportSection):
    name = "silent"
    title = "Silent"

    def render(self, ctx):
        return None


class MonitorOnly(ReportSection):
    name = "drift-only"
    title = "Drift only"
    applies_to = frozenset({"monitor"})

    def render(self, ctx):
        return SectionOutput([html.paragraph("drift facts")])


class WrongReturn(ReportSection):
    name = "wrong-return"
    title = "Wrong return"

    def render(self, ctx):
        return "<p>raw</p>"


def plugin_with(*sections: ReportSection) -> object:
    class SectionPlugin:
        @mlplug.hookimpl
        def register_report_sections(self, register):
            for s in sections:
                register(s)

    return SectionPlugin()


@pytest.fixture(scope="module")
def toy() -> ReportContext:
    return toy_context()


def test_builtin_sections_are_registered_through_the_hook(mlplug_plugins: Plugins) -> None:
    sections = mlplug_plugins.report_sections()
    assert list(sections) == BUILTIN + MONITOR_BUILTIN
    assert {r.plugin for r in sections.values()} == {"mlplug.builtin.report_sections"}
    info = {i.name: i for i in mlplug_plugins.infos()}["mlplug.builtin.report_sections"]
    assert info.builtin and info.hooks == ("register_report_sections",)
    assert all(s.applies_to <= REPORT_KINDS for s in (r.value for r in sections.values()))


def test_plugin_section_appears_in_order(register_plugin, mlplug_plugins, toy) -> None:
    register_plugin(plugin_with(Extra(), Silent()), "extras")
    report = build_report(toy, mlplug_plugins)
    assert [s.name for s in report.sections] == [
        "data",
        "performance",
        "experiments",
        "extra",
        "business",
        "environment",
    ]
    assert report.section("extra").plugin == "extras"
    parsed = parse(report.html)
    assert "toy has extra facts" in parsed.section_text["extra"]
    assert "section-silent" not in parsed.ids  # render() -> None leaves the section out
    assert "- extra: yes" in report.markdown


def test_a_failing_section_becomes_an_error_box(register_plugin, mlplug_plugins, toy, caplog) -> None:
    register_plugin(plugin_with(Boom(), WrongReturn()), "fragile")
    with caplog.at_level(logging.ERROR, logger="mlplug.reporting.build"):
        report = build_report(toy, mlplug_plugins)
    assert [s.name for s in report.failed] == ["boom", "wrong-return"]
    assert report.section("boom").error == "ValueError: the section exploded"
    parsed = parse(report.html)
    assert (
        "The section “Boom” (plugin fragile) failed: ValueError: the section exploded"
        in parsed.section_text["boom"]
    )
    assert "must return SectionOutput" in parsed.section_text["wrong-return"]
    for name in BUILTIN:  # the others rendered in full
        assert report.section(name).error is None
    assert parsed.section_images["performance"] >= 6
    assert "**Boom: section failed** (ValueError: the section exploded)" in report.markdown
    assert any("'boom'" in r.getMessage() and r.exc_info for r in caplog.records)


def test_sections_apply_to_report_kinds(register_plugin, mlplug_plugins) -> None:
    register_plugin(plugin_with(MonitorOnly()), "monitoring")
    train_report = build_report(toy_context(trials=0, champion=False), mlplug_plugins)
    assert "drift-only" not in [s.name for s in train_report.sections]
    monitor = ReportContext(task="toy", task_type=ToyTask(), kind="monitor", pip_check=PIP_OK)
    sections = [s.name for s in build_report(monitor, mlplug_plugins).sections]
    assert sections == ["drift", "environment", "drift-only"]


def test_registering_bad_sections_is_logged_and_skipped(register_plugin, mlplug_plugins) -> None:
    class Clash(Extra):
        name = "data"  # taken by the builtin section

    class BadKind(Extra):
        name = "bad-kind"
        applies_to = frozenset({"nightly"})

    register_plugin(plugin_with(Clash()), "clashing")
    register_plugin(plugin_with(BadKind()), "bad-kind")
    register_plugin(plugin_with(object()), "not-a-section")  # type: ignore[arg-type]
    sections = mlplug_plugins.report_sections()
    assert sections["data"].plugin == "mlplug.builtin.report_sections"
    assert "bad-kind" not in sections
    reasons = {s.name: s.reason for s in mlplug_plugins.skipped}
    assert "'data' is registered by plugin 'mlplug.builtin.report_sections'" in reasons["clashing"]
    assert "unknown report kinds ['nightly']" in reasons["bad-kind"]
    assert "expects a mlplug.reporting.ReportSection, got object" in reasons["not-a-section"]


def test_binary_performance_curves_thresholds_and_confusion(mlplug_plugins, toy) -> None:
    report = build_report(toy, mlplug_plugins)
    parsed = parse(report.html)
    assert parsed.problems() == []
    text = parsed.section_text["performance"]
    for phrase in ("ROC", "Calibration", "Threshold analysis", "Confusion matrix", "Feature attributions"):
        assert phrase in report.html, phrase
    assert "the task chose 0.400" in text
    # The confusion matrix at the chosen threshold, recomputed from the predictions.
    preds = toy.predictions
    flagged = preds["registered:yes"].to_numpy() >= 0.4
    y = preds["y"].to_numpy()
    tp, fn = int((flagged & (y == 1)).sum()), int((~flagged & (y == 1)).sum())
    assert re.search(rf"yes\s+{fn}\s+{tp}\s", text), text
    holdout = toy.holdout
    assert f"accuracy = {fmt.number(holdout.score)}" in text
    assert "champion v1" in text and "baseline" in text
    business = parsed.section_text["business"]
    assert "1,234 EUR" in business and "200.0 EUR" in business and "review fee" in business
    assert "the units differ" in business  # the toy champion reports points, not EUR
    experiments = parsed.section_text["experiments"]
    flat = " ".join(experiments.split())
    assert "trials 3 stopped early by ASHA 1 failed 0" in flat
    assert "scale" in experiments and "depth" in experiments


def test_markdown_and_tables_are_safe_for_prefect(mlplug_plugins, toy) -> None:
    report = build_report(toy, mlplug_plugins)
    assert report.markdown.startswith("# toy — training report")
    assert "accuracy **" in report.markdown and "business value: 1,234 EUR" in report.markdown
    assert {t.name for t in report.tables} == {"metrics", "trials", "dependencies"}
    for table in report.tables:
        assert re.fullmatch(r"[a-z0-9-]+", table.name)
        json.dumps(table.rows, allow_nan=False)  # Prefect stores tables as JSON
    trials = next(t for t in report.tables if t.name == "trials").rows
    assert trials[0]["score"] == 0.81 and trials[0]["scale"] == "2"


def test_report_with_nothing_but_a_task_still_renders(mlplug_plugins) -> None:
    ctx = ReportContext(task="toy", task_type=ToyTask(), pip_check=PIP_OK)
    report = build_report(ctx, mlplug_plugins)
    assert report.failed == []
    assert parse(report.html).problems() == []
    assert "no EDA" in report.html and "No holdout evaluation" in report.html


def test_text_columns_get_length_vocabulary_and_examples(mlplug_plugins) -> None:
    data = text_dataset()
    rng = np.random.default_rng(0)
    proba = rng.dirichlet([1, 1, 1], size=len(data))
    preds = pd.DataFrame(
        {"y": data.y, **{f"registered:{c}": proba[:, i] for i, c in enumerate(data.schema.classes)}}
    )
    metrics = Metrics({"macro_f1": 0.4}, "macro_f1")
    ctx = ReportContext(
        task="qa",
        task_type=ToyTask("qa"),
        record=record_of("qa", "model", metrics, {"train": 18, "valid": 6, "holdout": 6}),
        dataset=data,
        predictions=preds,
        pip_check=PIP_OK,
    )
    report = build_report(ctx, mlplug_plugins)
    assert report.failed == []
    parsed = parse(report.html)
    assert parsed.problems() == []
    text = parsed.section_text["data"]
    assert "Text column 'transcript'" in text
    # 20 distinct lower-cased words in the six texts (see contexts.text_dataset).
    assert "20 distinct words" in text
    assert "empty texts 5" in " ".join(text.split())
    assert "Examples per class" in text
    for label in ("solved", "escalated", "dropped"):
        assert label in text
    # Text from the data is escaped, never markup.
    assert "&lt;script&gt;alert(1)&lt;/script&gt; hello?" in report.html
    assert "<script>" not in report.html and "script" not in parsed.tags
    assert parsed.section_images["data"] >= 3  # class balance, association, lengths
    # Missing values: None / NaN / "" became missing after validation.
    assert re.search(r"channel categorical object 5 16\.7%", " ".join(text.split()))
    # Multi-class: per-class table and a 3x3 confusion matrix, no binary curves.
    performance = parsed.section_text["performance"]
    assert "Per class (holdout)" in performance and "Confusion matrix" in performance
    assert "ROC" not in performance


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.812345, "0.8123"),
        (12345.6, "12,346"),
        (123.456, "123.5"),
        (3.14159, "3.14"),
        (0.00001234, "1.23e-05"),
        (float("nan"), "n/a"),
        (None, "—"),
        (True, "yes"),
        (np.int64(20000), "20,000"),
    ],
)
def test_numbers_are_rounded_for_reading(value, text) -> None:
    assert fmt.number(value) == text


def test_values_are_never_dumped_as_raw_dicts() -> None:
    assert fmt.plain({"depth": 6, "learning_rate": 0.05, "tags": ["a", "b"]}) == (
        "depth=6, learning rate=0.05, tags=a, b"
    )
    assert fmt.json_value(float("inf")) is None and fmt.json_value(0.123456) == 0.1235
    assert fmt.signed(0.01) == "+0.0100" and fmt.signed(-2.5) == "-2.50"
