"""Benchmark: serving the fraud CatBoost model (issue 5 targets, measured in one run).

    .venv/bin/python benchmarks/serve_fraud.py [--duration 15] [--concurrency 8] \\
        [--mlflow-venv /tmp/mlflow-venv]

Three servers answer the same single-row requests, one after the other, each pinned to
core 0 while ``mlplug loadtest`` runs pinned to core 1 (``taskset``):

- ``mlplug serve fraud``, with API-key auth and request validation on;
- ``mlflow models serve --env-manager local`` on the same CatBoost model, logged with
  ``mlflow.catboost``; MLflow is a benchmark-only dependency in its own venv, never in
  mlplug's (create it with ``python3 -m venv /tmp/mlflow-venv &&
  /tmp/mlflow-venv/bin/pip install mlflow catboost``);
- a bare FastAPI endpoint that takes the same POST and returns a constant, on the same
  uvicorn settings: the practical ceiling of a Python web framework on one core;
- for reference, a raw ASGI callable that returns a constant: uvicorn alone.

Targets: mlplug >= 5x MLflow's throughput, p99 < 15 ms, >= 60% of the bare endpoint.

``--configs`` lists the mlplug servers, measured in that order (default ``default,off``):
``default`` (the environment as it is), ``off`` (``MLPLUG_MONITORING=false``), a number
(``MLPLUG_PROFILE_RATE`` rows per second) or ``NAME=VALUE`` pairs joined by ``+``, so
profiling settings compare within one run (``profiles_costs``: each against ``off``);
``--skip-bare`` leaves out the bare FastAPI and ASGI servers to keep a run short.
Prints a JSON summary and a Markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlplug.testing.servers import LOOPBACK, OFFLINE_ENV, free_port, stop, wait_http

BIN = Path(sys.executable).parent
API_KEY = "benchmark-key-0123456789abcdef"
BARE_APP = """
from fastapi import FastAPI

app = FastAPI()


@app.post("/predict")
async def predict():
    return {"model_version": 1, "prediction": "legit", "probability": 0.5}


ANSWER = b'{"model_version":1,"prediction":"legit","probability":0.5}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]


async def raw(scope, receive, send):
    # No framework at all: read the body, answer a constant.
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": ANSWER})
"""
MLFLOW_LOG = """
import sys
import catboost
import mlflow.catboost

model = catboost.CatBoostClassifier()
model.load_model(sys.argv[1])
mlflow.catboost.save_model(model, sys.argv[2])
"""


OURS = "mlplug serve (auth + validation + traffic profiles)"
OURS_NO_PROFILES = "mlplug serve, monitoring off"
OURS_PREFIX = "mlplug serve"


def _taskset(core: int) -> list[str]:
    return ["taskset", "-c", str(core)] if shutil.which("taskset") else []


def serve_command(task: str, port: int) -> list[str]:
    """``mlplug serve TASK`` pinned to core 0, quiet."""
    return [*_taskset(0), str(BIN / "mlplug"), "serve", task, "--port", str(port), "--log-level", "warning"]


def _train(home: Path, store: str, rows: int) -> Path:
    """Fit the fraud CatBoost model with default parameters, register and promote it."""
    import tempfile as tf

    import numpy as np

    from mlplug.plugins import get_plugins
    from mlplug.registry import Registry
    from mlplug.runtime import open_store

    task = get_plugins().task("fraud")
    data = task.synthesize(rows, seed=0)
    cut = int(len(data) * 0.8)
    train, valid = data.subset(slice(0, cut)), data.subset(slice(cut, None))
    model = task.create_model(data.schema, task.default_params())
    model.fit(train, valid)
    metrics = task.evaluate(valid, np.asarray(model.predict_proba(valid.X)))
    registry = Registry(open_store(store))
    ref = registry.put_dataset("fraud", data)
    saved = home / "catboost-model"
    saved.mkdir(parents=True)
    model.save(saved)
    with tf.TemporaryDirectory() as tmp:
        model.save(Path(tmp))
        version = registry.register_model(
            "fraud",
            Path(tmp),
            kind="catboost",
            params={},
            metrics=metrics,
            dataset_hash=ref.hash,
            schema=data.schema,
        )
    registry.promote("fraud", version.version, reason="serving benchmark")
    return saved / "model.cbm"


@contextlib.contextmanager
def _server(
    cmd: list[str], env: dict[str, str], ready_url: str | None, log: Path, port: int = 0
) -> Iterator[None]:
    """Run ``cmd`` until the block ends; ready when ``ready_url`` answers 2xx (or, without
    one, when ``port`` accepts connections)."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        if ready_url:
            wait_http(ready_url, proc, timeout=120, log=log)
        else:
            _wait_port(port, proc)
        yield
    finally:
        stop(proc, grace=20)


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=1):
            return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on port {port}")


def _load(url: str, bodies: Path, args: argparse.Namespace, headers_key: bool) -> dict:
    cmd = [
        *_taskset(1),
        str(BIN / "mlplug"),
        "loadtest", url,
        "--body", str(bodies),
        "--concurrency", str(args.concurrency),
        "--duration", str(args.duration),
        "--warmup", str(args.warmup),
        "--json",
    ]  # fmt: skip
    env = {**os.environ, **({"MLPLUG_API_KEY": API_KEY} if headers_key else {})}
    if not headers_key:
        env.pop("MLPLUG_API_KEY", None)
    out = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=args.duration + args.warmup + 120
    )
    if out.returncode not in (0, 1):
        raise RuntimeError(f"loadtest failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout)


def _configs(text: str) -> list[tuple[str, dict[str, str]]]:
    """``default,50,off`` -> the mlplug servers to measure: (result name, extra environment).

    An item is ``default``, ``off``, a number (``MLPLUG_PROFILE_RATE``) or ``NAME=VALUE``
    pairs joined by ``+`` (any other environment, e.g. ``MLPLUG_PROFILE_SAMPLE=0.000001``).
    """
    configs = []
    for item in (part.strip() for part in text.split(",")):
        if item == "default":
            configs.append((OURS, {}))
        elif item == "off":
            configs.append((OURS_NO_PROFILES, {"MLPLUG_MONITORING": "false"}))
        elif "=" in item:
            env = dict(pair.split("=", 1) for pair in item.split("+"))
            configs.append((f"{OURS_PREFIX}, {item}", env))
        else:
            try:
                rate = float(item)
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"{item!r}: not default, off, a rate or NAME=VALUE"
                ) from None
            configs.append((f"{OURS}, MLPLUG_PROFILE_RATE={item}", {"MLPLUG_PROFILE_RATE": f"{rate:g}"}))
    return configs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--mlflow-venv", type=Path, default=Path("/tmp/mlflow-venv"))
    parser.add_argument("--skip-mlflow", action="store_true")
    parser.add_argument("--skip-bare", action="store_true")
    parser.add_argument("--configs", type=_configs, default=_configs("default,off"))
    args = parser.parse_args()
    os.environ.update(OFFLINE_ENV)
    results: dict[str, dict] = {}
    uptime_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="mlplug-serve-bench-") as tmp_name:
        tmp = Path(tmp_name)
        home, store = tmp / "home", (tmp / "store").as_uri()
        os.environ.update({"MLPLUG_HOME": str(home), "MLPLUG_STORE": store, "MLPLUG_LOAD_PLUGINS": "fraud"})
        cbm = _train(home, store, args.rows)

        import orjson

        from mlplug.loadtest import task_bodies

        records = [orjson.loads(b) for b in task_bodies("fraud", count=512, seed=1)]
        plain = tmp / "records.jsonl"
        plain.write_bytes(b"\n".join(orjson.dumps(r) for r in records))
        framed = tmp / "mlflow.jsonl"
        framed.write_bytes(b"\n".join(orjson.dumps({"dataframe_records": [r]}) for r in records))
        base_env = {**os.environ}

        (tmp / "bare_app.py").write_text(BARE_APP)
        bare_servers = (
            ("bare FastAPI (constant)", "bare_app:app"),
            ("bare ASGI (constant)", "bare_app:raw"),
        )
        for name, target in () if args.skip_bare else bare_servers:
            port = free_port()
            bare = [
                *_taskset(0), str(BIN / "uvicorn"), target, "--app-dir", str(tmp),
                "--host", LOOPBACK, "--port", str(port), "--loop", "uvloop", "--http", "httptools",
                "--no-access-log", "--log-level", "warning", "--no-server-header",
            ]  # fmt: skip
            ready = f"http://{LOOPBACK}:{port}/docs" if target.endswith(":app") else None
            with _server(bare, base_env, ready, tmp / "bare.log", port=port):
                results[name] = _load(f"http://{LOOPBACK}:{port}/predict", plain, args, False)

        port = free_port()
        serve = serve_command("fraud", port)
        # The default server profiles its traffic for monitoring; `off` switches that off, so
        # the difference is the cost of the traffic observer.
        for name, extra in args.configs:
            env = {**base_env, "MLPLUG_API_KEYS": API_KEY, **extra}
            with _server(serve, env, f"http://{LOOPBACK}:{port}/readyz", tmp / "mlplug.log"):
                results[name] = _load(f"http://{LOOPBACK}:{port}/predict", plain, args, True)

        mlflow = args.mlflow_venv / "bin" / "mlflow"
        if not args.skip_mlflow:
            if not mlflow.exists():
                raise SystemExit(
                    f"{mlflow} not found; create the venv (see this script's docstring) or --skip-mlflow"
                )
            model_dir = tmp / "mlflow-model"
            subprocess.run(
                [str(args.mlflow_venv / "bin" / "python"), "-c", MLFLOW_LOG, str(cbm), str(model_dir)],
                check=True,
            )
            port = free_port()
            cmd = [
                *_taskset(0), str(mlflow), "models", "serve", "-m", str(model_dir), "--env-manager", "local",
                "-h", LOOPBACK, "-p", str(port), "--workers", "1",
            ]  # fmt: skip
            # MLflow starts `uvicorn` through the shell: its venv's bin must come first on PATH.
            env = {
                **base_env,
                "MLFLOW_TRACKING_URI": (tmp / "mlruns").as_uri(),
                "PATH": f"{mlflow.parent}{os.pathsep}{base_env.get('PATH', '')}",
            }
            with _server(cmd, env, f"http://{LOOPBACK}:{port}/ping", tmp / "mlflow.log"):
                results["mlflow models serve"] = _load(
                    f"http://{LOOPBACK}:{port}/invocations", framed, args, False
                )
    uptime_after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    summary: dict = {
        "concurrency": args.concurrency,
        "duration_s": args.duration,
        "pinning": "server on core 0, load generator on core 1" if _taskset(0) else "no taskset: unpinned",
        "uptime_before": uptime_before,
        "uptime_after": uptime_after,
        "results": results,
    }
    # The default server, or the first profiling configuration measured.
    ours = results.get(OURS) or next(
        (r for n, r in results.items() if n.startswith(OURS_PREFIX) and n != OURS_NO_PROFILES),
        results[args.configs[0][0]],
    )
    if "bare FastAPI (constant)" in results:
        summary["mlplug_vs_bare"] = round(
            ours["throughput_rps"] / results["bare FastAPI (constant)"]["throughput_rps"], 3
        )
    if OURS_NO_PROFILES in results:
        off = results[OURS_NO_PROFILES]["throughput_rps"]
        # One figure per profiling configuration: its throughput below monitoring off.
        costs = {
            n: round(1 - r["throughput_rps"] / off, 3)
            for n, r in results.items()
            if n.startswith(OURS_PREFIX) and n != OURS_NO_PROFILES
        }
        summary["profiles_cost"] = costs.get(OURS, next(iter(costs.values()), None))
        summary["profiles_costs"] = costs
    if "mlflow models serve" in results:
        summary["mlplug_vs_mlflow"] = round(
            ours["throughput_rps"] / results["mlflow models serve"]["throughput_rps"], 2
        )
    print(json.dumps(summary, indent=2))
    print()
    print("| server | throughput (req/s) | p50 ms | p95 ms | p99 ms | errors |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        lat = r["latency_ms"]
        cells = [
            f"{r['throughput_rps']:,.0f}",
            *(f"{lat[q]:.2f}" for q in ("p50", "p95", "p99")),
            str(r["errors"]),
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
