"""What `mlplug deploy` plans for the installed task types, and prefect.yaml as its output."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import mlplug
from mlplug import prefect_deployments as pd
from mlplug.plugins import new_plugins
from mlplug.workpools import POOL_NAMES
from tests.toy_task import ToyTask

ROOT = Path(__file__).resolve().parents[1]


class Toys:
    @mlplug.hookimpl
    def register_tasks(self, register):
        register(ToyTask("toy"))
        register(ToyTask("other_toy"))


def test_every_task_type_gets_its_four_deployments(register_plugin) -> None:
    register_plugin(Toys(), "toys")
    plans = {p.name: p for p in pd.plan({"toy": ToyTask("toy"), "other_toy": ToyTask("other_toy")})}
    assert sorted(plans) == sorted(
        f"{flow}-{task}" for flow in ("train", "monitor", "refit", "deploy") for task in ("toy", "other_toy")
    )
    train = plans["train-toy"]
    assert (train.flow_name, train.entrypoint, train.parameters) == (
        "train",
        "flows.train.train",
        {"task": "toy"},
    )
    # The run form: the task is fixed, the loader options are the task's, described.
    properties = train.parameter_schema["properties"]
    assert properties["task"]["enum"] == ["toy"]
    assert properties["options"]["properties"]["label"]["description"] == "label column of the file"
    assert properties["options"]["additionalProperties"] is False
    assert all(prop.get("description") for prop in properties.values()), properties
    monitor = plans["monitor-toy"]
    assert monitor.cron == f"{pd.monitor_minute('toy')} * * * *" and plans["monitor-other_toy"].cron
    refit = plans["refit-toy"]
    assert refit.trigger is not None and refit.trigger["name"] == "refit-toy on drift"
    assert refit.trigger["match"] == {"prefect.resource.id": "mlplug.model.toy"}
    assert "start refit-toy" in refit.trigger["description"]
    assert refit.trigger["parameters"]["reason"] == "{{ event.payload.get('decision', '') }}"


def test_no_deployment_carries_a_store_or_a_working_directory(register_plugin) -> None:
    register_plugin(Toys(), "toys")
    text = pd.prefect_yaml(pd.plan({"toy": ToyTask("toy")}), "mlplug-process")
    config = yaml.safe_load(text)
    assert config["pull"] == []
    body = yaml.safe_dump(config)
    assert "MLPLUG_STORE" not in body and "{{ $" not in body and "set_working_directory" not in body
    assert {d["entrypoint"] for d in config["deployments"]} == {
        "flows.train.train", "flows.monitor.monitor", "flows.refit.refit", "flows.deploy.deploy"
    }  # fmt: skip


def test_prefect_yaml_is_what_mlplug_deploy_writes_for_the_first_party_plugins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLPLUG_LOAD_PLUGINS", "fraud,convqa")
    plugins = new_plugins()
    tasks = {name: reg.value for name, reg in plugins.tasks().items()}
    assert sorted(tasks) == ["convqa", "fraud"]
    expected = pd.prefect_yaml(pd.plan(tasks), POOL_NAMES["process"])
    assert (ROOT / "prefect.yaml").read_text() == expected, (
        "prefect.yaml is stale: run `mlplug deploy --task convqa --task fraud --prefect-yaml prefect.yaml`"
    )
