"""Tuning fraud on an existing Ray cluster: ``mlplug train fraud --trials 4`` with
``MLPLUG_RAY_ADDRESS`` set to a real two-node cluster (1 CPU per node, token authentication;
the ``ray_cluster`` fixture), run as a user runs it, in a process of its own."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlplug_fraud import FraudTask
from mlplug_fraud.params import QUICK_PARAMS

from mlplug import training
from mlplug.errors import RayClusterError
from mlplug.plugins import get_plugins, new_plugins, use_plugins
from mlplug.record import TrainingRecord
from mlplug.runtime import open_registry
from mlplug.testing.ray_cluster import RayCluster
from mlplug.testing.ray_cluster import ray_cluster as start_ray_cluster
from mlplug.testing.servers import PrefectServer
from mlplug.tuning import tune_task
from tests.reporting.htmlcheck import parse

pytestmark = pytest.mark.slow

MLPLUG = str(Path(sys.executable).with_name("mlplug"))
ROWS, SEED = 4000, 3


def _train(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MLPLUG, "train", "fraud", "--rows", str(ROWS), "--seed", str(SEED), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture
def user_env(prefect_server: PrefectServer, tmp_path: Path) -> dict[str, str]:
    """A user's shell: the Prefect API, a store and a home of this test's, fraud only, and no
    Ray token or cluster of the developer's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_AUTH", "MLPLUG_RAY"))}
    env.update(prefect_server.env)
    env.update(
        MLPLUG_HOME=str(tmp_path / "home"),
        MLPLUG_STORE=(tmp_path / "store").as_uri(),
        MLPLUG_LOAD_PLUGINS="fraud",
    )
    return env


def test_trials_run_on_both_nodes_and_score_as_on_the_driver(
    ray_cluster: RayCluster, user_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _train({**user_env, **ray_cluster.env}, "--trials", "4", "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout[out.stdout.index("{") :])
    assert summary["trials"] == 4 and summary["version"] == 1

    for key in ("MLPLUG_HOME", "MLPLUG_STORE", "MLPLUG_LOAD_PLUGINS"):
        monkeypatch.setenv(key, user_env[key])
    registry = open_registry()
    version = registry.model("fraud", 1)
    record, _ = TrainingRecord.from_store(registry, version)
    assert record.tuning is not None
    trials = record.tuning.trials
    assert all(t.error is None and t.score is not None for t in trials), trials

    # Every trial names its node, and between them they used both of the cluster's nodes.
    nodes = {t.node_id for t in trials}
    assert nodes == ray_cluster.node_ids(), (nodes, ray_cluster.node_ids())
    assert all(t.host and t.node and t.node_id and t.node_id[:8] in t.node for t in trials)
    raw = json.loads(registry.artifact("fraud", 1, "trials.json"))["trials"]
    assert {t["node_id"] for t in raw} == nodes

    # The report's experiments section names each trial's node.
    report = parse(registry.artifact("fraud", 1, "report.html").decode())
    experiments = report.section_text["experiments"]
    assert "Ray nodes" in experiments and "2 (" in experiments
    for trial in trials:
        assert trial.node and trial.node in experiments

    # Same quality as on the driver: the data reached the trials whole (through the object
    # store), so each configuration trained here on the same rows, one thread as a trial
    # has, reaches the very score the cluster reported after as many progress steps.
    with use_plugins(new_plugins()):
        task = get_plugins().task("fraud")
        parts = training.split(registry.load_dataset("fraud", version.dataset_hash), seed=SEED)
        for trial in trials:
            model = task.create_model(parts.train.schema, {**trial.params, "thread_count": 1})
            scores: dict[int, float] = {}
            model.fit(parts.train, parts.valid, progress=functools.partial(_keep_first, scores))
            assert scores[trial.steps] == pytest.approx(trial.score, abs=1e-12), (trial, scores)


def _keep_first(scores: dict[int, float], step: int, score: float) -> None:
    scores.setdefault(step, score)


def test_local_and_cluster_runs_sample_the_same_trials(
    ray_cluster: RayCluster, user_env: dict[str, str]
) -> None:
    """The search is seeded: a cluster run explores exactly what a local run does."""
    params = []
    for env in (user_env, {**user_env, **ray_cluster.env}):
        out = _train(env, "--trials", "2", "--json", "--no-promote")
        assert out.returncode == 0, out.stderr[-3000:]
        store = Path(env["MLPLUG_STORE"].removeprefix("file://"))
        latest = max((store / "fraud" / "models").iterdir(), key=lambda p: int(p.name))
        trials = json.loads((latest / "trials.json").read_text())["trials"]
        params.append(sorted(json.dumps(t["params"], sort_keys=True) for t in trials))
    assert params[0] == params[1]


def test_a_wrong_token_fails_the_run_in_one_line(ray_cluster: RayCluster, user_env: dict[str, str]) -> None:
    out = _train({**user_env, **ray_cluster.env, "RAY_AUTH_TOKEN": "f" * 64}, "--trials", "2")
    assert out.returncode == 1
    assert "refused this driver's token (from RAY_AUTH_TOKEN)" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert not (Path(user_env["MLPLUG_STORE"].removeprefix("file://")) / "fraud" / "models").exists()


def test_a_cluster_without_the_plugin_fails_in_one_line_that_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Ray node has its own Python environment: here one where the fraud plugin cannot be
    imported (a stand-in package first on its path), as on a node nobody installed it on."""
    shadow = tmp_path / "site" / "mlplug_fraud"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'mlplug_fraud'\")\n")
    task = FraudTask()
    parts = training.split(task.synthesize(1500, seed=SEED), seed=SEED)
    with start_ray_cluster(nodes=1, cpus_per_node=1, node_env={"PYTHONPATH": str(tmp_path / "site")}) as bare:
        for key, value in bare.env.items():
            monkeypatch.setenv(key, value)
        with pytest.raises(RayClusterError) as caught:
            tune_task(task, parts.train, parts.valid, trials=2, workdir=tmp_path / "tune", fixed=QUICK_PARAMS)
    message = str(caught.value)
    assert "\n" not in message
    assert f"every tuning trial failed on the Ray cluster at {bare.address}" in message
    assert "No module named 'mlplug_fraud'" in message and "install" in message
