"""Benchmark: the whole train flow for fraud on synthetic data (issue target: 100k rows,
8 trials, 2 cores, < 5 min, orchestration overhead < 20 %, peak memory < 4 GB).

    .venv/bin/python benchmarks/train_fraud.py [--rows 100000] [--trials 8] [--cpus 2]

Runs against a real Prefect server on 127.0.0.1 (started here, not timed) and a fresh
file:// store. Prints a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.memory import PeakMemory
from mlplug.testing.servers import OFFLINE_ENV, prefect_server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()
    os.environ.update(OFFLINE_ENV)
    with tempfile.TemporaryDirectory() as tmp, prefect_server(Path(tmp) / "prefect") as server:
        os.environ.update(server.env)
        os.environ["MLPLUG_HOME"] = str(Path(tmp) / "home")
        os.environ["MLPLUG_STORE"] = (Path(tmp) / "store").as_uri()
        os.environ["MLPLUG_LOAD_PLUGINS"] = "fraud"
        from flows.train import train

        started = time.perf_counter()
        with PeakMemory() as memory:
            summary = train(task="fraud", rows=args.rows, trials=args.trials, cpus=args.cpus)
        wall = time.perf_counter() - started
    t = summary["timings"]
    compute = t["tune"] + t["fit"] + t["evaluate"]
    result = {
        "rows": args.rows,
        "trials": args.trials,
        "cpus": args.cpus,
        "wall_seconds": round(wall, 1),
        "compute_seconds (tune+fit+evaluate)": round(compute, 1),
        "orchestration_overhead_share": round((wall - compute) / wall, 3),
        "overhead_share_counting_explain_as_compute": round((wall - compute - t["explain"]) / wall, 3),
        "timings": {k: round(v, 2) for k, v in t.items()},
        "peak_memory_gib": round(memory.peak_gib, 2),
        "registered": summary["kind"],
        "holdout": {k: round(v, 4) for k, v in summary["metrics"].items()},
        "candidates_holdout": {
            kind: {k: round(v, 4) for k, v in values.items()}
            for kind, values in summary["candidates"].items()
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
