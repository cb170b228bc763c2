"""The monitor flow against a real Prefect server: drift drills with a toy task, stored
traffic profiles, the drift event and its cooldown."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime

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


def _events(
    api_url: str, name: str, timeout: float = 30, wait_for: str | None = None, since: str | None = None
) -> list[dict]:
    """Events of ``name`` the server has stored (occurred ``since`` an ISO time, if given);
    they are written asynchronously, so wait until there are some, or until the event
    ``wait_for`` (an id) is among them: earlier tests' events may already be there."""
    deadline = time.monotonic() + timeout
    query: dict = {"event": {"name": [name]}}
    if since:
        query["occurred"] = {"since": since}
    while True:
        response = httpx.post(f"{api_url}/events/filter", json={"filter": query})
        response.raise_for_status()
        events = response.json()["events"]
        arrived = any(e["id"] == wait_for for e in events) if wait_for else bool(events)
        if arrived or time.monotonic() > deadline:
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
    since = datetime.now(UTC).isoformat()  # the session's server holds other tests' events
    out = monitor(task="toy", rows=2000, seed=7, drift=1.5)
    assert out["drifted"] is True and out["drifted_columns"] == ["x"]
    assert out["event"] is not None and out["alarm"].startswith(f"emitted {DRIFT_EVENT} ({out['event']})")

    events = _events(prefect_api.api_url, DRIFT_EVENT, wait_for=out["event"], since=since)
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


# -- values a profile cannot hold, through a real server ------------------------------------


def _serve(records: list[list[dict]]) -> list[int]:
    """Serve the toy champion with uvicorn on loopback (profiles on, written at shutdown) and
    post each list of records as one request; the status codes."""
    from mlplug.serving.app import create_app
    from mlplug.serving.config import ServeSettings
    from mlplug.testing.servers import app_in_thread

    app = create_app(ServeSettings(task="toy", insecure=True, reload_interval=0))
    with app_in_thread(app) as url, httpx.Client(timeout=30) as client:
        return [client.post(f"{url}/predict", json={"records": batch}).status_code for batch in records]


def test_extreme_values_served_are_counted_and_never_blind_the_monitor(
    trained, prefect_api, monkeypatch
) -> None:
    registry, _ = trained
    # 602 rows within a fraction of a second are a burst above the default rate, which the
    # sampler thins; this test is about counting what is profiled, so profile every row.
    monkeypatch.setenv("MLPLUG_PROFILE_RATE", "0")
    drifted = ToyTask("toy").synthesize(600, seed=21, drift=1.5).X["x"].tolist()
    # 1.7e308 is a finite JSON number: the API accepts it. Its square, and a sum of two of
    # them, overflow to inf; before the fix every monitor run over this window failed.
    statuses = _serve([[{"x": v} for v in drifted[:300]], [{"x": 1.7e308}, {"x": 1.7e308}],
                       [{"x": v} for v in drifted[300:]]])  # fmt: skip
    assert statuses == [200, 200, 200]

    out = monitor(task="toy", hours=1)
    assert out["rows"] == 602 and out["seen_rows"] == 602  # every row profiled
    assert out["out_of_range"] == {"x": {"non_finite": 0, "extreme": 2}}
    assert out["drifted"] is True and out["event"] is not None
    assert "values out of range (beyond ±1e+100): x: 2 extreme" in out["decision"]

    stored = json.loads(registry.store.get(out["result"].split(registry.store.uri(""))[-1]))
    x = next(c for c in stored["columns"] if c["name"] == "x")
    assert x["current_extreme"] == 2 and x["current_non_finite"] == 0 and x["reference_extreme"] == 0
    assert x["current_mean"] is not None and abs(x["current_mean"]) < 1e100
    events = _events(prefect_api.api_url, DRIFT_EVENT, wait_for=out["event"])
    event = next(e for e in events if e["id"] == out["event"])
    assert event["payload"]["out_of_range"] == {"x": {"non_finite": 0, "extreme": 2}}
    assert event["payload"]["seen_rows"] == "602" and event["payload"]["rows"] == "602"
    html = registry.store.get(out["report"].split(registry.store.uri(""))[-1]).decode()
    assert "x: 2 extreme" in html and "602 rows profiled (every row answered)" in html


def test_the_api_refuses_numbers_json_cannot_carry(trained) -> None:
    from mlplug.serving.app import create_app
    from mlplug.serving.config import ServeSettings
    from mlplug.testing.servers import app_in_thread

    app = create_app(ServeSettings(task="toy", insecure=True, reload_interval=0))
    with app_in_thread(app) as url, httpx.Client(timeout=30) as client:
        for body in (b'{"x": NaN}', b'{"x": Infinity}', b'{"x": -1e999}'):
            answer = client.post(f"{url}/predict", content=body, headers={"content-type": "application/json"})
            assert answer.status_code == 422, (body, answer.text)
            assert "not valid JSON" in answer.json()["error"]


def test_a_busy_server_profiles_a_sample_and_the_result_counts_what_it_answered(trained, monkeypatch) -> None:
    from mlplug.serving.app import create_app
    from mlplug.serving.config import ServeSettings
    from mlplug.testing.servers import app_in_thread

    registry, _ = trained
    monkeypatch.setenv("MLPLUG_PROFILE_RATE", "100")
    values = ToyTask("toy").synthesize(500, seed=22).X["x"].tolist()
    batch = {"records": [{"x": v} for v in values]}
    sent = 0
    app = create_app(ServeSettings(task="toy", insecure=True, reload_interval=0))
    with app_in_thread(app) as url, httpx.Client(timeout=30) as client:
        deadline = time.monotonic() + 3  # three seconds of 500-row requests: far above 100 rows/s
        while time.monotonic() < deadline:
            assert client.post(f"{url}/predict", json=batch).status_code == 200
            sent += len(values)
    out = monitor(task="toy", hours=1)
    assert out["seen_rows"] == sent and sent >= 2000
    assert 0 < out["rows"] < sent  # a sample, recorded with the rows it was drawn from
    html = registry.store.get(out["report"].split(registry.store.uri(""))[-1]).decode()
    assert f"{out['rows']:,} rows profiled of {sent:,} answered" in html


# -- damaged profiles and profiles of another schema ------------------------------------------


def _calm_profiles(registry, version: int, seeds: tuple[int, ...] = (31, 32)) -> None:
    from mlplug.scoring import load_version

    task_type = ToyTask("toy")
    mv = registry.model("toy", version)
    schema = Schema.from_dict(mv.schema)
    model = load_version(task_type, registry, version).model
    writer = ProfileWriter(registry.store, task_type, schema, mv.threshold)
    for seed in seeds:  # traffic like the training data, answered by the version itself
        data = task_type.synthesize(400, seed=seed)
        proba = model.predict_proba(data.X)
        writer.add(
            version, ["x"], data.X.values.tolist(), proba, schema.predicted_labels(proba, mv.threshold)
        )
        writer.flush()


def _put_bad_profiles(registry, version: int) -> dict[str, str]:
    """Damaged files and a profile of another schema, under names a writer would use."""
    import pandas as pd

    from mlplug.monitoring.whylogs_compat import Profile

    good = registry.store.get(list_profiles(registry.store, "toy", version)[0].key)
    # Another model's traffic: other columns, and a score far from this version's outputs;
    # merged, it read as "the model's outputs drifted".
    rng = np.random.default_rng(4)
    foreign = pd.DataFrame({"x": rng.normal(0, 1, 2000), "z": rng.normal(5, 1, 2000),
                            "prediction": ["no"] * 2000, "score": rng.beta(1, 30, 2000)})  # fmt: skip
    files = {"empty": b"", "garbage": b"\x00garbage" * 40, "truncated": good[: len(good) // 3],
             "foreign": Profile.of(foreign).to_bytes()}  # fmt: skip
    keys = {}
    for name, data in files.items():
        key = layout.profile("toy", version, datetime.now(UTC), f"attacker_{name}")
        registry.store.put(key, data)
        keys[name] = key
    return keys


def test_bad_profiles_are_skipped_by_key_and_never_raise_a_false_alarm(trained, prefect_api, caplog) -> None:
    registry, version = trained
    _calm_profiles(registry, version)
    keys = _put_bad_profiles(registry, version)
    with caplog.at_level(logging.WARNING, logger="mlplug.monitoring.profiles"):
        out = monitor(task="toy", hours=1, min_rows=500)
    assert out["profiles"] == 2 and out["rows"] == 800
    assert out["drifted"] is False and out["decision"].startswith("no drift: 0 of 1 input columns drifted")
    skipped = {s["key"]: s["reason"] for s in out["skipped_profiles"]}
    assert set(skipped) == set(keys.values())
    assert skipped[keys["empty"]] == "empty file (0 bytes)"
    assert skipped[keys["garbage"]].startswith("not a readable whylogs profile (320 bytes)")
    assert skipped[keys["truncated"]].startswith("not a readable whylogs profile")
    assert skipped[keys["foreign"]] == "another schema: columns the version does not have: z"
    stored = json.loads(registry.store.get(out["result"].split(registry.store.uri(""))[-1]))
    assert {s["key"] for s in stored["skipped_profiles"]} == set(keys.values())
    html = registry.store.get(out["report"].split(registry.store.uri(""))[-1]).decode()
    assert "4 traffic profiles of the window were skipped; 2 merged." in html
    for key in keys.values():
        assert key in html and f"skipped traffic profile {registry.store.uri(key)}" in caplog.text
    # The Prefect artifact of the run names them too.
    response = httpx.post(f"{prefect_api.api_url}/artifacts/filter", json={})
    response.raise_for_status()
    markdown = "\n".join(str(a.get("data")) for a in response.json())
    assert all(f"skipped profile `{key}`" in markdown for key in keys.values())


def test_a_window_of_only_bad_profiles_says_so(trained) -> None:
    registry, version = trained
    _calm_profiles(registry, version, seeds=(33,))
    good = list_profiles(registry.store, "toy", version)[0].key
    keys = _put_bad_profiles(registry, version)
    registry.store.delete(good)
    out = monitor(task="toy", hours=1)
    assert out["rows"] == 0 and out["profiles"] == 0 and out["drifted"] is False and out["event"] is None
    assert len(out["skipped_profiles"]) == len(keys)
    assert out["alarm"] == (
        "no usable traffic: all 4 profiles of the last 1 h were skipped (unreadable or of another "
        "schema; see skipped_profiles in drift.json); nothing to compare"
    )
    html = registry.store.get(out["report"].split(registry.store.uri(""))[-1]).decode()
    assert "no profile was usable, so there is nothing to compare" in html and out["alarm"] in html

    from typer.testing import CliRunner

    from mlplug.cli import app

    printed = CliRunner().invoke(app, ["monitor", "toy", "--hours", "1", "--no-emit"])
    assert printed.exit_code == 0, printed.output
    assert f"skipped profile {keys['empty']}: empty file (0 bytes)" in printed.output
    assert "no usable traffic: all 4 profiles" in printed.output
