"""Benchmark: where the time between a batch's model call and its answers goes (issue 14).

    .venv/bin/python benchmarks/serve_batching.py --dir /tmp/batching --phase prepare  # once
    for phase in probe real sleep instant; do
        flock -x /tmp/mlplug-cpu.lock .venv/bin/python benchmarks/batch_turnaround.py \\
            --dir /tmp/batching --phase $phase
    done

``probe`` needs no server and no mlplug: one thread, pinned to core 0, runs a fixed piece of
Python (about 40 µs warm: a few small numpy calls, a list, a dict) right after a gap of
``G`` ms spent sleeping or spinning in a pure-Python loop, and reports how long the first
run after the gap takes against the next ones. It tells whether code paths that have not run
for a while are slow to run again on this machine (caches and TLBs shared with other tenants).

The other phases serve convqa from ``--dir`` (``serve_batching.py``'s model and bodies) in
this process, batched as convqa declares, pinned to core 0, with ``mlplug loadtest`` on core
1 at ``--concurrency``; the model call is:

- ``real``: the all-MiniLM-L6-v2 model;
- ``sleep``: replaced by ``time.sleep(--model-seconds)`` (the core idles, no cache traffic);
- ``instant``: replaced by constant probabilities (the server never waits, so every code
  path stays warm).

For every batch the server records when its model call returned to the event loop and when
each of its answers was handed to the socket, and the table gives the median over batches of
the first and last answer's delay; with ``mlplug loadtest``'s per-request "latency minus own
model call" (from ``Server-Timing``) and the throughput. Prints JSON and a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.serve_fraud import API_KEY, _load, _server, _taskset
from mlplug.testing.servers import LOOPBACK, free_port

PHASES = ("probe", "real", "sleep", "instant")
GAPS_MS = (1, 10, 50, 200, 700)


def _probe_work() -> float:
    """Microseconds for a fixed piece of Python of the kind a request runs."""
    import numpy as np

    p = np.array([[0.3, 0.7]])
    started = time.perf_counter()
    for _ in range(20):
        picks = (p[:, 1] >= 0.5).astype(np.int64)
        values = [float(x) for x in p[:, 1].tolist()]
        _ = {"prediction": "a", "probability": values[0], "index": int(picks[0])}
    return (time.perf_counter() - started) * 1e6


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def probe(repeats: int = 12) -> list[dict[str, Any]]:
    import numpy as np

    out = []
    for mode, gap in ((m, g) for m in ("sleep", "spin") for g in GAPS_MS):
        runs = []
        for _ in range(repeats):
            (time.sleep if mode == "sleep" else _spin)(gap / 1000)
            runs.append([_probe_work() for _ in range(3)])
        first, second, third = np.median(np.array(runs[2:]), axis=0)
        out.append({"gap": mode, "gap_ms": gap, "first_us": first, "second_us": second, "third_us": third})
    return out


def serve(port: int, events_path: Path, model: str, seconds: float) -> None:
    """Serve with timestamps recorded: each batch's model end, each answer's write."""
    import numpy as np
    import uvicorn

    from mlplug.serving import batching, predict
    from mlplug.serving.app import create_app
    from mlplug.serving.config import get_serve_settings
    from mlplug.serving.server import _drain_is_success, freeze_startup_heap, uvicorn_options

    events: list[tuple[str, float]] = []
    answered = batching.AdaptiveBatcher._answered

    def record_answered(self: Any, batch: Any) -> None:
        events.append(("model_end", time.perf_counter()))
        answered(self, batch)

    batching.AdaptiveBatcher._answered = record_answered  # type: ignore[method-assign]
    if model != "real":

        def fake(self: Any, rows: Any) -> Any:
            if model == "sleep":
                time.sleep(seconds)
            return np.full((len(rows), len(self.classes)), 1.0 / len(self.classes))

        predict.Predictor.proba = fake  # type: ignore[method-assign]
    settings = get_serve_settings()
    app = create_app(settings)
    freeze_startup_heap()

    async def timed(scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def on_send(message: dict[str, Any]) -> None:
            await send(message)
            if message["type"] == "http.response.body" and scope.get("path") == "/predict":
                events.append(("answer", time.perf_counter()))

        await app(scope, receive, on_send)

    options = uvicorn_options(settings, log_level="warning")
    with _drain_is_success():  # uvicorn re-raises SIGTERM after the drain; still write the events
        uvicorn.Server(uvicorn.Config(timed, host=LOOPBACK, port=port, **options)).run()
    events_path.write_text(json.dumps(events))


def turnaround(events: list[list[Any]]) -> dict[str, Any]:
    """Median over batches of the first and last answer's delay after the model call."""
    import numpy as np

    batches: list[list[float]] = []
    end = None
    for kind, at in events:
        if kind == "model_end":
            end = at
            batches.append([])
        elif end is not None:
            batches[-1].append((at - end) * 1000)
    full = [b for b in batches[1:-1] if b]
    if not full:
        return {}
    return {
        "batches": len(full),
        "answers_per_batch": float(np.mean([len(b) for b in full])),
        "first_answer_ms": float(np.median([b[0] for b in full])),
        "last_answer_ms": float(np.median([b[-1] for b in full])),
        "per_further_answer_ms": float(np.median([(b[-1] - b[0]) / max(len(b) - 1, 1) for b in full])),
    }


def run_server_phase(directory: Path, model: str, args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    events_path = directory / f"turnaround-{model}.json"
    env = {
        **os.environ,
        "MLPLUG_HOME": str(directory / "home"),
        "MLPLUG_STORE": (directory / "store").as_uri(),
        "MLPLUG_LOAD_PLUGINS": "convqa",
        "MLPLUG_TASK": "convqa",
        "MLPLUG_API_KEYS": API_KEY,
        "MLPLUG_BATCHING": "auto",
    }
    cmd = [*_taskset(0), sys.executable, __file__, "--serve", str(port), str(events_path),
           model, str(args.model_seconds)]  # fmt: skip
    with _server(cmd, env, f"{url}/readyz", directory / f"turnaround-{model}.log"):
        load = _load(f"{url}/predict", directory / "bodies.jsonl", args, True)
    # _server sent SIGTERM and waited: the events file is written on the way out.
    result = {
        "throughput_rps": load["throughput_rps"],
        "errors": load["errors"],
        "latency_ms": load["latency_ms"],
        "outside_model_ms": load.get("outside_model_ms"),
        "model_ms": (load.get("server_timing_ms") or {}).get("model"),
    }
    result.update(turnaround(json.loads(events_path.read_text())))
    return result


def _p99_gap(result: dict[str, Any]) -> str:
    latency, model = result.get("latency_ms") or {}, result.get("model_ms") or {}
    if "p99" not in latency or "p99" not in model:
        return ""
    return f"{latency['p99'] - model['p99']:.1f}"


def _server_row(name: str, r: dict[str, Any]) -> str:
    nan = float("nan")
    om = r.get("outside_model_ms") or {}
    cells = [
        name,
        f"{r['throughput_rps']:.1f}",
        str(r.get("batches", 0)),
        f"{r.get('answers_per_batch', 0):.1f}",
        f"{r.get('first_answer_ms', nan):.2f}",
        f"{r.get('last_answer_ms', nan):.2f}",
        f"{r.get('per_further_answer_ms', nan):.3f}",
        f"{om.get('p50', nan):.1f} / {om.get('p99', nan):.1f}",
        _p99_gap(r),
    ]
    return "| " + " | ".join(cells) + " |"


def table(results: dict[str, Any]) -> str:
    lines = []
    if "probe" in results:
        lines += ["| gap before the run | first run µs | second | third |", "|---|---:|---:|---:|"]
        for r in results["probe"]:
            runs = f"{r['first_us']:.0f} | {r['second_us']:.0f} | {r['third_us']:.0f}"
            lines.append(f"| {r['gap']} {r['gap_ms']} ms | {runs} |")
        lines.append("")
    rows = [m for m in results if m != "probe"]
    if rows:
        lines += [
            "| model call | req/s | batches | answers per batch | first answer after the call, ms | "
            "last answer, ms | each further answer, ms | latency - own model call p50 / p99 ms | "
            "p99 latency - p99 model call, ms |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        lines += [_server_row(m, results[m]) for m in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dir", type=Path, default=Path("/tmp/batching"))
    parser.add_argument("--phase", choices=(*PHASES, "table"), required=False)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=25.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--run", default="", help="keep a repeated phase apart: stored as 'PHASE, run RUN'")
    parser.add_argument("--model-seconds", type=float, default=0.7)
    parser.add_argument(
        "--serve", nargs=4, metavar=("PORT", "EVENTS", "MODEL", "SECONDS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.serve:
        port, events, model, seconds = args.serve
        signal.signal(signal.SIGINT, signal.default_int_handler)
        serve(int(port), Path(events), model, float(seconds))
        return
    saved = args.dir / "turnaround.json"
    results = json.loads(saved.read_text()) if saved.exists() else {}
    if args.phase == "probe":
        out = subprocess.run(
            [*_taskset(0), sys.executable, "-c",
             "import json, benchmarks.batch_turnaround as b; print(json.dumps(b.probe()))"],
            capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1],
        )  # fmt: skip
        results["probe"] = json.loads(out.stdout.strip().splitlines()[-1])
    elif args.phase in PHASES:
        name = f"{args.phase}, run {args.run}" if args.run else args.phase
        results[name] = run_server_phase(args.dir, args.phase, args)
    saved.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    print(table(results))


if __name__ == "__main__":
    main()
