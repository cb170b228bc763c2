"""Benchmark: the profiling work of one flush window at each ``MLPLUG_PROFILE_RATE``.

    flock -x /tmp/mlplug-cpu.lock .venv/bin/python benchmarks/profile_window_work.py \\
        [--task fraud] [--rates 200 50 20] [--repeat 5] [--window 60]

A saturated server profiles about ``MLPLUG_PROFILE_RATE`` rows a second. Its whylogs calls
(one per 2,000 buffered rows, and the flush every ``MLPLUG_PROFILE_FLUSH_SECONDS``) come
every few seconds, so the 15 s of ``serve_fraud.py`` hold one or two of them at most, and
none at a low rate: this measures a whole window instead, in process. The window's rows
(``rate * window``, parsed by the server's request contract from the task's synthetic
bodies) go to :class:`~mlplug.monitoring.profiles.ProfileWriter` one request at a time, as
the observer thread hands them over, then the flush profiles the rest and writes the
profile to a file store. The figure is the process's CPU time for all of it, and its share
of one core over the window.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from mlplug.loadtest import task_bodies
from mlplug.monitoring.profiles import ProfileWriter
from mlplug.plugins import get_plugins
from mlplug.runtime import open_store
from mlplug.serving.schemas import build_contract
from mlplug.testing.servers import OFFLINE_ENV


def window_cpu_seconds(writer: ProfileWriter, requests: list[list[list]], classes: list[str]) -> float:
    """CPU seconds to hand ``requests`` (one row each) to ``writer`` and flush it."""
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(len(classes)), size=len(requests))
    labels = [classes[int(i)] for i in proba.argmax(axis=1)]
    features = writer.schema.feature_names
    started = time.process_time()
    for i, rows in enumerate(requests):
        writer.add(1, features, rows, proba[i : i + 1], labels[i : i + 1])
    writer.flush()
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--task", default="fraud")
    parser.add_argument("--rates", type=float, nargs="+", default=[200.0, 50.0, 20.0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--window", type=float, default=60.0, help="seconds (MLPLUG_PROFILE_FLUSH_SECONDS)")
    args = parser.parse_args()
    import os

    os.environ.update(OFFLINE_ENV)
    task = get_plugins().task(args.task)
    schema = task.synthesize(10, seed=0).schema
    contract = build_contract(schema, max_batch=1000, max_explain_rows=10)
    bodies = task_bodies(args.task, count=512, seed=1)
    parsed = [contract.parse(body).rows for body in bodies]
    classes = list(schema.classes)
    print(
        "| rate (rows/s) | rows a window | whylogs calls a window | CPU ms a window (all runs) "
        "| median | share of a core |"
    )
    print("|---:|---:|---:|---|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="mlplug-window-") as tmp:
        store = open_store(Path(tmp).as_uri())
        for rate in args.rates:
            count = int(rate * args.window)
            requests = [parsed[i % len(parsed)] for i in range(count)]
            writer = ProfileWriter(store, task, schema, 0.5, flush_seconds=args.window)
            window_cpu_seconds(writer, requests[:2000], classes)  # warm-up: first whylogs call
            runs = [window_cpu_seconds(writer, requests, classes) for _ in range(args.repeat)]
            calls = count // writer.chunk_rows + (1 if count % writer.chunk_rows else 0)
            median = statistics.median(runs)
            cells = [
                f"{rate:g}",
                f"{count:,}",
                str(calls),
                ", ".join(f"{r * 1000:.0f}" for r in runs),
                f"{median * 1000:.0f}",
                f"{median / args.window:.2%}",
            ]
            print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
