"""``mlplug report`` on versions registered without the train flow's artifacts (as older
versions are): the report is regenerated from whatever the store holds."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
from typer.testing import CliRunner

import mlplug
from mlplug.cli import app
from mlplug.registry import Registry
from mlplug.reporting import ReportContext, build_report
from mlplug.task import Explanation, Metrics
from tests.reporting.contexts import PIP_OK
from tests.reporting.htmlcheck import parse
from tests.toy_task import ConstantModel, ToyTask

runner = CliRunner()


class Toys:
    @mlplug.hookimpl
    def register_tasks(self, register):
        register(ToyTask("toy"))


@pytest.fixture
def registry(register_plugin, mlplug_store, tmp_path) -> Registry:
    register_plugin(Toys(), "toys")
    reg = Registry(mlplug_store)
    data = ToyTask("toy").synthesize(200)
    ref = reg.put_dataset("toy", data)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    ConstantModel(0.4).save(model_dir)
    explanation = Explanation("coefficients", {"x": 0.7, "y": -0.2}, [{"x": 0.1}])
    # v1 has no artifacts at all; v2 only the explanation, in the JSON form of the dataclass.
    for score, artifacts in (
        (0.61, {}),
        (0.66, {"explanation.json": json.dumps(asdict(explanation)).encode()}),
    ):
        reg.register_model(
            "toy",
            model_dir,
            kind="model",
            params={"rate": 0.4},
            metrics=Metrics({"accuracy": score, "recall": 0.5}, "accuracy", threshold=0.5),
            dataset_hash=ref.hash,
            schema=data.schema,
            artifacts=artifacts,
        )
    return reg


def test_report_of_a_version_with_few_artifacts(registry: Registry) -> None:
    ctx = ReportContext.from_store(registry, ToyTask("toy"), "latest", pip_check=PIP_OK)
    assert ctx.version is not None and ctx.version.version == 2
    assert "evaluation.json is not stored with version 2" in ctx.notes
    assert ctx.explanation == Explanation("coefficients", {"x": 0.7, "y": -0.2}, [{"x": 0.1}])
    report = build_report(ctx)
    assert report.failed == []
    parsed = parse(report.html)
    assert parsed.problems() == []
    assert "evaluation.json is not stored" in parsed.section_text["report-notes"]
    # Metrics fall back to metadata.json; the data set is still in the store.
    assert "accuracy = 0.6600" in parsed.section_text["performance"]
    assert "200" in parsed.section_text["data"] and parsed.section_images["data"] >= 3
    assert "coefficients" in parsed.section_text["performance"]  # the attribution chart
    assert "v1" in parsed.section_text["experiments"]
    # env.json is always written by the registry.
    assert "pip check" in parsed.section_text["environment"]


def test_mlplug_report_writes_under_mlplug_home_by_default(registry: Registry, tmp_path) -> None:
    result = runner.invoke(app, ["report", "toy"])
    assert result.exit_code == 0, result.output
    written = result.output.strip().splitlines()[-1].removeprefix("written to ")
    assert written == str(tmp_path / "home" / "reports" / "toy-v2.html")
    assert "toy v2 — training report" in Path(written).read_text(encoding="utf-8")

    # A monitor report needs a stored monitor result (tests/flows/test_monitor_flow.py
    # rebuilds one); without it the command says how to make one.
    result = runner.invoke(app, ["report", "toy", "--version", "1", "--kind", "monitor"])
    assert result.exit_code != 0
    assert "toy v1 has no monitor results in the store; run `mlplug monitor toy --version 1`" in str(
        result.exception
    )


def test_mlplug_report_unknown_task_lists_installed_ones(registry: Registry) -> None:
    result = runner.invoke(app, ["report", "nope"])
    assert result.exit_code != 0
    assert "installed task types: toy" in str(result.exception)
