"""Benchmark: from a drift event to a running and to a completed refit, through the real
path: a Prefect server, the automation `mlplug deploy` creates, and a process worker, on the
fraud task with the operator's refit settings (3,000 synthetic rows, 2 trials).

    .venv/bin/python benchmarks/refit_latency.py [--repeats 3] [--query-seconds 10 2]

For each worker polling interval (`PREFECT_WORKER_QUERY_SECONDS`; Prefect's default is 10),
it starts a worker, emits `mlplug.drift.detected` for `mlplug.model.fraud` `--repeats` times
(one at a time) and reports, per event, the seconds until the refit flow run was RUNNING
(its start time) and COMPLETED (its end time), measured by the server's own timestamps.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlplug.testing.servers import OFFLINE_ENV, prefect_server, stop

BIN = Path(sys.executable).parent


async def _refit_runs(deployment_name: str) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    async with get_client() as client:
        deployment = await client.read_deployment_by_name(deployment_name)
        return await client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
        )


def _one_event(seq: int) -> dict[str, float]:
    from prefect.events import emit_event

    before = {r.id for r in asyncio.run(_refit_runs("refit/refit-fraud"))}
    sent = datetime.now(UTC)
    emit_event(
        event="mlplug.drift.detected",
        resource={"prefect.resource.id": "mlplug.model.fraud", "mlplug.version": "1"},
        payload={"task": "fraud", "version": "1", "decision": f"drift: benchmark event {seq}"},
    )
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        new = [r for r in asyncio.run(_refit_runs("refit/refit-fraud")) if r.id not in before]
        if new and new[0].state and new[0].state.is_final():
            run = new[0]
            assert run.state.type.value == "COMPLETED", run.state
            return {
                "to_running_s": (run.start_time - sent).total_seconds(),
                "to_completed_s": (run.end_time - sent).total_seconds(),
            }
        time.sleep(0.5)
    raise TimeoutError("no refit run completed within 10 minutes")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--query-seconds", type=float, nargs="+", default=[10.0, 2.0])
    args = parser.parse_args()
    os.environ.update(OFFLINE_ENV)
    results: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp, prefect_server(Path(tmp) / "prefect") as server:
        os.environ.update(server.env)
        os.environ["MLPLUG_HOME"] = str(Path(tmp) / "home")
        os.environ["MLPLUG_STORE"] = (Path(tmp) / "store").as_uri()
        os.environ["MLPLUG_LOAD_PLUGINS"] = "fraud"
        from flows.train import train

        train(task="fraud", rows=3000, trials=0, seed=1)
        subprocess.run(
            [str(BIN / "mlplug"), "deploy", "--task", "fraud", "--refit-rows", "3000", "--refit-trials", "2"],
            check=True,
        )
        for query in args.query_seconds:
            env = {**os.environ, "PREFECT_WORKER_QUERY_SECONDS": str(query)}
            log = open(Path(tmp) / f"worker-{query}.log", "wb")  # noqa: SIM115 - closed below
            worker = subprocess.Popen(
                [str(BIN / "prefect"), "worker", "start", "--pool", "mlplug-process"],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
            try:
                time.sleep(5)  # the worker's first poll
                results[str(query)] = [_one_event(i) for i in range(args.repeats)]
            finally:
                stop(worker)
                log.close()
    print("| worker polling (s) | event -> refit running (s) | event -> refit completed (s) |")
    print("|---|---|---|")
    for query, runs in results.items():
        running = [r["to_running_s"] for r in runs]
        done = [r["to_completed_s"] for r in runs]
        print(
            f"| {query} | median {statistics.median(running):.1f} (max {max(running):.1f}) "
            f"| median {statistics.median(done):.1f} (max {max(done):.1f}) |"
        )


if __name__ == "__main__":
    main()
