"""Reports of a real training run: the train flow on a Prefect server (toy task, trials=0),
then the report rebuilt from the store, by the API and by ``mlplug report``."""

from __future__ import annotations

import platform
import sys

import pytest
from typer.testing import CliRunner

import mlplug
from flows.train import train
from mlplug.cli import app
from mlplug.reporting import ReportContext, ReportSection, SectionOutput, build_report, html
from mlplug.reporting import format as fmt
from mlplug.runtime import open_registry
from tests.reporting.htmlcheck import parse
from tests.toy_task import ToyTask

BUILTIN = ["data", "performance", "experiments", "business", "environment"]


class WidgetSection(ReportSection):
    """What a task plugin adds: shown only in its own task's reports."""

    name = "toy-widgets"
    title = "Toy widgets"
    order = 25

    def render(self, ctx):
        if not isinstance(ctx.task_type, ToyTask):
            return None
        return SectionOutput([html.paragraph(f"{ctx.task} counted 42 widgets")], summary=["widgets: 42"])


class ToyPlugin:
    @mlplug.hookimpl
    def register_tasks(self, register):
        register(ToyTask("toy"))

    @mlplug.hookimpl
    def register_report_sections(self, register):
        register(WidgetSection())


@pytest.fixture
def registry(register_plugin, prefect_api, mlplug_store):
    register_plugin(ToyPlugin(), "toy-plugin")
    return open_registry()


def test_report_of_a_training_run_rebuilt_from_the_store(registry) -> None:
    train(task="toy", trials=0, rows=400, seed=1)
    second = train(task="toy", trials=0, rows=400, seed=2)  # has a champion and a history
    assert second["version"] == 2

    ctx = ReportContext.from_store(registry, ToyTask("toy"), 2)
    assert ctx.dataset is not None and len(ctx.dataset) == 400
    assert ctx.split_rows == {"train": 256, "valid": 64, "holdout": 80}
    assert ctx.champion_version == 1 and ctx.champion is not None
    assert [v.version for v in ctx.history] == [1]
    assert {"y", "registered:yes", "baseline:yes", "champion:yes"} <= set(ctx.predictions.columns)
    assert ctx.explanation is not None and ctx.explanation.global_importance == {"x": 1.0}

    report = build_report(ctx)
    assert [s.name for s in report.sections] == [*BUILTIN[:2], "toy-widgets", *BUILTIN[2:]]
    assert report.failed == []
    parsed = parse(report.html)
    assert parsed.problems() == []
    assert {f"section-{n}" for n in BUILTIN} <= parsed.ids
    text = parsed.section_text
    mv = registry.model("toy", 2)

    assert "400" in text["data"] and "no" in text["data"] and "holdout" in text["data"]
    assert parsed.section_images["data"] >= 3  # class balance, association, distributions
    accuracy = fmt.number(mv.metrics["accuracy"])
    assert f"accuracy = {accuracy}" in text["performance"]
    assert "champion v1" in text["performance"]
    assert parsed.section_images["performance"] >= 6  # ROC, PR, calibration, thresholds x2, CM
    assert "Global importance" in report.html and "x" in text["performance"]
    assert "counted 42 widgets" in text["toy-widgets"]
    assert "Tuning was off" in text["experiments"] and "v1" in text["experiments"]
    assert parsed.section_images["experiments"] == 1  # score by version
    assert "points" in text["business"] and "champion v1" in text["business"]
    # The environment recorded by the flow is this interpreter's.
    assert sys.version.split()[0] in text["environment"]
    assert platform.platform() in text["environment"]
    assert "pip check" in text["environment"]
    assert "toy-plugin" in text["environment"]
    assert report.markdown.startswith("# toy v2 — training report")
    assert "widgets: 42" in report.markdown and f"accuracy **{accuracy}**" in report.markdown


def test_mlplug_report_regenerates_from_the_store(registry, tmp_path) -> None:
    train(task="toy", trials=0, rows=300, seed=1)
    runner = CliRunner()
    out = tmp_path / "r.html"
    result = runner.invoke(app, ["report", "toy", "--version", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"written to {out}" in result.output
    parsed = parse(out.read_text())
    assert parsed.problems() == [] and "section-performance" in parsed.ids

    result = runner.invoke(app, ["report", "toy", "--version", "7"])
    assert result.exit_code != 0
    assert "no model version 7" in str(result.exception)


def test_report_artifacts_are_published_to_prefect(registry, prefect_api) -> None:
    import asyncio

    from prefect import flow
    from prefect.client.orchestration import get_client

    from mlplug.reporting import publish_artifacts
    from tests.reporting.contexts import toy_context

    @flow
    def publish() -> None:
        report = build_report(toy_context())
        publish_artifacts(
            report, key="toy-artifacts", store=registry.store, report_key="toy/models/1/report.html"
        )

    publish()

    async def artifacts():
        # Filter on the server: the session's server holds hundreds of artifacts by now, and an
        # unfiltered read returns only one page of them, in id (random) order.
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(like_="toy-artifacts-%"))
            )

    found = {a.key: a for a in asyncio.run(artifacts()) if a.key and a.key.startswith("toy-artifacts")}
    assert set(found) == {
        "toy-artifacts-train-report",
        "toy-artifacts-train-report-link",
        "toy-artifacts-metrics",
        "toy-artifacts-trials",
        "toy-artifacts-dependencies",
    }
    assert "accuracy" in found["toy-artifacts-train-report"].data
    link = found["toy-artifacts-train-report-link"]
    assert link.data.startswith("[HTML report](file://") and "paste the link" in link.description


def test_the_report_link_on_s3_is_a_presigned_url_a_browser_opens(s3_store, prefect_api, monkeypatch) -> None:
    import asyncio

    import httpx
    from prefect import flow
    from prefect.client.orchestration import get_client

    from mlplug.reporting import publish_artifacts
    from tests.reporting.contexts import toy_context

    monkeypatch.setenv("MLPLUG_REPORT_LINK_SECONDS", "3600")
    report = build_report(toy_context(trials=0))
    s3_store.put("toy/models/1/report.html", report.html.encode())

    @flow
    def publish() -> None:
        publish_artifacts(report, key="toy-s3", store=s3_store, report_key="toy/models/1/report.html")

    publish()

    async def link():
        async with get_client() as client:
            return await client.read_latest_artifacts()

    (artifact,) = [a for a in asyncio.run(link()) if a.key == "toy-s3-train-report-link"]
    url = artifact.data.split("](", 1)[1].rstrip(")")
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=3600" in url
    assert "expires in 1 h" in artifact.description
    response = httpx.get(url)  # no credentials: the signature is the permission
    assert response.status_code == 200 and response.text == report.html
