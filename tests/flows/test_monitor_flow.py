"""The monitor flow against a real Prefect server: drift drills with a toy task, stored
traffic profiles, the drift event and its cooldown."""

from __future__ import annotations

import json
import time

import httpx
import numpy as np
import pytest

import mlplug
from flows.monitor import DRIFT_EVENT, monitor
from flows.train import train
from mlplug import layout
from mlplug.errors import MlplugError
from mlplug.monitoring.check import history
from mlplug.monitoring.profiles import ProfileWriter, list_profiles
from mlplug.runtime import open_registry
from mlplug.schema import Schema
from tests.toy_task import ToyTask


class Toys:
    @mlplug.hookimpl
    def register_tasks(self, register):
        register(ToyTask("toy"))


@pytest.fixture
def trained(register_plugin, prefect_api, mlplug_store):
    register_plugin(Toys(), "toys")
    summary = train(task="toy", trials=0, rows=3000, seed=1)
    return open_registry(), summary["version"]


def _events(api_url: str, name: str, timeout: float = 30) -> list[dict]:
    """Events of ``name`` the server has stored; they are written asynchronously."""
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.post(f"{api_url}/events/filter", json={"filter": {"event": {"name": [name]}}})
        response.raise_for_status()
        events = response.json()["events"]
        if events or time.monotonic() > deadline:
            return events
        time.sleep(0.5)


def test_a_version_stores_its_reference_profile(trained) -> None:
    registry, version = trained
    mv = registry.model("toy", version)
    assert layout.REFERENCE_PROFILE in mv.files


def test_traffic_like_the_training_data_does_not_drift(trained) -> None:
    registry, version = trained
    out = monitor(task="toy", rows=2000, seed=7, drift=0.0)
    assert out["drifted"] is False and out["event"] is None and out["alarm"] == "no drift: nothing to do"
    assert out["decision"].startswith("no drift: 0 of 1 input columns drifted")
    assert out["rows"] == 2000
    stored = json.loads(registry.store.get(out["result"].split(registry.store.uri(""))[-1]))
    assert stored["version"] == version and stored["drifted"] is False
    columns = {c["name"]: c for c in stored["columns"]}
    assert set(columns) == {"x", "prediction", "score"}
    assert columns["x"]["score"] < 0.1 and columns["x"]["category"] == "NO_DRIFT"


def test_drifted_traffic_emits_one_event_then_cools_down(trained, prefect_api) -> None:
    registry, version = trained
    out = monitor(task="toy", rows=2000, seed=7, drift=1.5)
    assert out["drifted"] is True and out["drifted_columns"] == ["x"]
    assert out["event"] is not None and out["alarm"].startswith(f"emitted {DRIFT_EVENT} ({out['event']})")

    events = _events(prefect_api.api_url, DRIFT_EVENT)
    assert [e["id"] for e in events] == [out["event"]]
    event = events[0]
    assert event["resource"]["prefect.resource.id"] == "mlplug.model.toy"
    assert event["resource"]["mlplug.version"] == str(version)
    assert event["payload"]["decision"] == out["decision"]
    assert event["payload"]["drifted_columns"] == "x"

    again = monitor(task="toy", rows=2000, seed=8, drift=1.5)
    assert again["drifted"] is True and again["event"] is None
    assert "already raised the alarm" in again["alarm"]
    no_cooldown = monitor(task="toy", rows=2000, seed=9, drift=1.5, cooldown_hours=0)
    assert no_cooldown["event"] is not None
    assert [r.drifted for r in history(registry, "toy")] == [True, True, True]


def test_stored_traffic_profiles_are_merged(trained) -> None:
    registry, version = trained
    task_type = ToyTask("toy")
    mv = registry.model("toy", version)
    writer = ProfileWriter(registry.store, task_type, Schema.from_dict(mv.schema), mv.threshold)
    for seed in (11, 12):
        data = task_type.synthesize(400, seed=seed, drift=2.0)
        proba = np.tile([0.4, 0.6], (len(data), 1))
        writer.add(version, ["x"], data.X.values.tolist(), proba, ["yes"] * len(data))
        writer.flush()
    assert len(list_profiles(registry.store, "toy", version)) == 2

    out = monitor(task="toy", hours=1, min_rows=500)
    assert out["profiles"] == 2 and out["rows"] == 800
    assert out["drifted"] is True and "x" in out["drifted_columns"]
    # Below the minimum of rows, drifted or not, there is no decision and no event.
    quiet = monitor(task="toy", hours=1, min_rows=900)
    assert quiet["drifted"] is False and quiet["decision"].startswith("no decision: 800 rows")


def test_a_monitor_report_is_stored_with_the_result(trained) -> None:
    registry, _ = trained
    out = monitor(task="toy", rows=1000, drift=1.5)
    key = out["report"].split(registry.store.uri(""))[-1]
    html = registry.store.get(key).decode()
    assert "monitoring report" in html and "Drift" in html and out["alarm"] in html
    assert out["decision"] in html or out["decision"].replace(">=", "&gt;=") in html
    assert key.endswith("/report.html") and registry.store.exists(key.replace("report.html", layout.DRIFT))


def test_a_version_without_reference_profile_is_named(trained) -> None:
    registry, version = trained
    registry.store.delete(layout.model_file("toy", version, layout.REFERENCE_PROFILE))
    with pytest.raises(MlplugError, match=rf"toy v{version} has no reference profile"):
        monitor(task="toy", rows=1000)
    assert history(registry, "toy") == []


def test_cli_demo_runs_the_drift_drill_and_refits(register_plugin, prefect_api, mlplug_store) -> None:
    from typer.testing import CliRunner

    from mlplug.cli import app

    register_plugin(Toys(), "toys")
    out = CliRunner().invoke(app, ["demo", "--task", "toy", "--no-serve", "--trials", "0"])
    assert out.exit_code == 0, out.output
    assert "== toy: drift check on 5000 rows of calm synthetic traffic" in out.output  # capped
    calm, drifted = out.output.split("== toy: drift check on ")[1:3]
    assert "no drift:" in calm and "drift: 1 of 1 input columns drifted (x (" in drifted
    assert "== toy: refit on drifted data" in out.output
    registry = open_registry()
    refit = registry.model("toy", 2)
    assert refit.info["run_kind"] == "refit" and refit.info["trigger"].startswith("drift: 1 of 1")
    assert len(history(registry, "toy")) == 2


def test_cli_monitor_prints_the_decision(trained) -> None:
    from typer.testing import CliRunner

    from mlplug.cli import app

    out = CliRunner().invoke(app, ["monitor", "toy", "--rows", "1000", "--drift", "1.5", "--no-emit"])
    assert out.exit_code == 0, out.output
    assert "drift: 1 of 1 input columns drifted" in out.output
    assert "emitting events is switched off" in out.output


def test_mlplug_report_rebuilds_the_latest_monitor_report(trained, tmp_path) -> None:
    from typer.testing import CliRunner

    from mlplug.cli import app

    _, version = trained
    runner = CliRunner()
    missing = runner.invoke(app, ["report", "toy", "--version", "champion", "--kind", "monitor"])
    assert missing.exit_code != 0 and f"toy v{version} has no monitor results" in str(missing.exception)
    monitor(task="toy", rows=1000, drift=1.5, emit=False)
    out = tmp_path / "monitor.html"
    done = runner.invoke(app, ["report", "toy", "--kind", "monitor", "--out", str(out)])
    assert done.exit_code == 0, done.output
    html = out.read_text()
    assert "monitoring report" in html and "drift: 1 of 1 input columns drifted" in html


def test_a_window_without_traffic_says_so(trained) -> None:
    registry, _ = trained
    out = monitor(task="toy")  # nothing served this version yet
    assert out["rows"] == 0 and out["drifted"] is False and out["event"] is None
    assert out["alarm"].startswith("no traffic: no rows in the last 24 h")
    html = registry.store.get(out["report"].split(registry.store.uri(""))[-1]).decode()
    assert out["alarm"] in html


def test_a_task_without_a_champion_completes_with_what_to_do(
    register_plugin, prefect_api, mlplug_store
) -> None:
    register_plugin(Toys(), "toys")
    state = monitor(task="toy", return_state=True)
    assert state.is_completed()
    assert state.message == "no champion yet: train first (`mlplug train toy` or the train-toy deployment)"
    assert state.result()["alarm"] == state.message
    assert list(open_registry().store.list("toy/monitoring/")) == []
