"""Benchmark: the fraud train flow tuned on a real two-node Ray cluster (``MLPLUG_RAY_ADDRESS``,
token authentication, 1 CPU per node, both on this machine) against the same run on a local
Ray with 2 CPUs.

    .venv/bin/python benchmarks/ray_cluster_tuning.py [--rows 100000] [--trials 4]

Reports, per mode: wall time of the flow, the tune step, the trials per node, the best
validation score and the registered model's holdout PR-AUC (same seed: the same trials are
sampled, so quality must match).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlplug.testing.ray_cluster import ray_cluster
from mlplug.testing.servers import OFFLINE_ENV, prefect_server


def run(rows: int, trials: int, seed: int, cluster_env: dict[str, str] | None) -> dict[str, Any]:
    from flows.train import train
    from mlplug.record import TrainingRecord
    from mlplug.runtime import open_registry

    saved = {k: os.environ.get(k) for k in ("MLPLUG_STORE", *(cluster_env or {}))}
    with tempfile.TemporaryDirectory() as store:
        os.environ["MLPLUG_STORE"] = Path(store).as_uri()
        os.environ.update(cluster_env or {})
        try:
            started = time.perf_counter()
            summary = train(task="fraud", rows=rows, trials=trials, cpus=2, seed=seed)
            wall = time.perf_counter() - started
            registry = open_registry()
            record, _ = TrainingRecord.from_store(registry, registry.model("fraud", summary["version"]))
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    assert record.tuning is not None
    return {
        "mode": "two-node cluster (1 CPU each)" if cluster_env else "local Ray (2 CPUs)",
        "wall_seconds": round(wall, 1),
        "tune_seconds": round(summary["timings"]["tune"], 1),
        "trials_per_node": dict(Counter(t.node or "?" for t in record.tuning.trials)),
        "trials_stopped_early": sum(t.stopped_early for t in record.tuning.trials),
        "best_validation_score": round(record.tuning.best_score or 0, 4),
        "best_params": record.tuning.best_params,
        "holdout_pr_auc": round(summary["metrics"]["pr_auc"], 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.update(OFFLINE_ENV)
    with tempfile.TemporaryDirectory() as tmp, prefect_server(Path(tmp) / "prefect") as server:
        os.environ.update(server.env)
        os.environ["MLPLUG_HOME"] = str(Path(tmp) / "home")
        os.environ["MLPLUG_LOAD_PLUGINS"] = "fraud"
        results = [run(args.rows, args.trials, args.seed, None)]
        with ray_cluster(nodes=2, cpus_per_node=1) as cluster:
            results.append(run(args.rows, args.trials, args.seed, cluster.env))
    print(json.dumps({"rows": args.rows, "trials": args.trials, "runs": results}, indent=2))


if __name__ == "__main__":
    main()
