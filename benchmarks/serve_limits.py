"""Benchmark: what the connection limits cost and what they stop (issue 15, item 7).

    .venv/bin/python benchmarks/serve_limits.py [--duration 10] [--idle 20000]

The same fraud app runs twice, one server after the other, pinned to core 0:

- ``uvicorn``: the app under uvicorn's own httptools protocol (what ``mlplug serve`` ran
  before ``mlplug.serving.connections``);
- ``mlplug serve``: the app under mlplug's guarded protocol, default limits.

For each it measures: single-row ``/predict`` throughput (``mlplug loadtest``, 8 keep-alive
connections, pinned to core 1); four clients sending 113 MB headers for 5 s while one client
times ``/predict`` (server RSS before and at peak, the slowest and median ``/predict``, the
most bytes one attacker got the server to read); then ``--idle`` idle connections from two
client processes, and what 20 new ``/predict`` requests get while they are open. Prints
JSON and a Markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlplug.testing.servers import LOOPBACK, OFFLINE_ENV, free_port, stop, wait_http
from tests.serving.support import API_KEY, AUTH, build_fraud_store, fraud_records

BIN = Path(sys.executable).parent
UVICORN_ONLY = (
    "import uvicorn; uvicorn.run('mlplug.serving.app:create_app_from_env', factory=True, "
    "host='{host}', port={port}, http='httptools', loop='uvloop', lifespan='on', "
    "access_log=False, log_level='warning')"
)
#: Holds N idle connections open until stdin closes; prints how many it opened.
IDLE_CLIENT = """
import json, socket, sys
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
held, failed = [], 0
for _ in range(count):
    try:
        held.append(socket.create_connection((host, port), timeout=0.5))
    except OSError:
        failed += 1
        if failed > 50:
            break
print(json.dumps({"opened": len(held), "failed": failed}), flush=True)
sys.stdin.read()
"""


def _taskset(core: int) -> list[str]:
    return ["taskset", "-c", str(core)] if shutil.which("taskset") else []


@contextlib.contextmanager
def server(kind: str, store_url: str, state: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    env = {
        **os.environ,
        **OFFLINE_ENV,
        "MLPLUG_TASK": "fraud",
        "MLPLUG_STORE": store_url,
        "MLPLUG_API_KEYS": API_KEY,
        "MLPLUG_LOAD_PLUGINS": "fraud",
        "MLPLUG_RELOAD_INTERVAL": "0",
        "MLPLUG_MONITORING": "false",
        "MLPLUG_HOME": str(state / kind),
    }
    if kind == "uvicorn":
        cmd = [sys.executable, "-c", UVICORN_ONLY.format(host=LOOPBACK, port=port)]
    else:
        cmd = [str(BIN / "mlplug"), "serve", "fraud", "--host", LOOPBACK, "--port", str(port)]
    log = state / f"{kind}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([*_taskset(0), *cmd], stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://{LOOPBACK}:{port}"
    try:
        wait_http(f"{url}/readyz", proc, timeout=90, log=log)
        yield url, proc
    finally:
        stop(proc, grace=30)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def throughput(url: str, duration: float) -> dict:
    cmd = [*_taskset(1), str(BIN / "mlplug"), "loadtest", f"{url}/predict", "--task", "fraud",
           "--concurrency", "8", "--duration", str(duration), "--warmup", "2", "--json"]  # fmt: skip
    out = subprocess.run(cmd, env={**os.environ, "MLPLUG_API_KEY": API_KEY}, capture_output=True, text=True)
    return json.loads(out.stdout)


def header_attack(url: str, pid: int, seconds: float = 5.0) -> dict:
    host, port = url.removeprefix("http://").split(":")
    record = fraud_records(1)[0]
    before = peak = rss_mb(pid)
    most_read = 0
    attacking = threading.Event()
    attacking.set()

    def attacker() -> None:
        nonlocal most_read
        chunk = b"a" * (1 << 20)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            sent = 0
            with contextlib.suppress(OSError), socket.create_connection((host, int(port))) as sock:
                sock.sendall(b"GET /model HTTP/1.1\r\nHost: x\r\nX-Big: ")
                for _ in range(113):
                    sock.sendall(chunk)
                    sent += len(chunk)
            most_read = max(most_read, sent)

    threads = [threading.Thread(target=attacker, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    latencies, failures = [], 0
    with httpx.Client(headers=AUTH, timeout=30) as client:
        while any(t.is_alive() for t in threads):
            started = time.perf_counter()
            try:
                ok = client.post(f"{url}/predict", json=record).status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - started)
            failures += not ok
            peak = max(peak, rss_mb(pid))
    return {
        "rss_before_mb": round(before),
        "rss_peak_mb": round(peak),
        "predict_p50_ms": round(statistics.median(latencies) * 1000, 1),
        "predict_max_ms": round(max(latencies) * 1000, 1),
        "predict_failed": failures,
        "most_read_by_one_attacker_mb": round(most_read / (1 << 20)),
    }


def idle_flood(url: str, count: int, log: Path) -> dict:
    host, port = url.removeprefix("http://").split(":")
    clients = [
        subprocess.Popen(
            [sys.executable, "-c", IDLE_CLIENT, host, port, str(count // 2)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        opened = [json.loads(c.stdout.readline()) for c in clients]  # type: ignore[union-attr]
        outcomes: dict[str, int] = {}
        slowest = 0.0
        record = fraud_records(1)[0]
        for _ in range(20):
            started = time.perf_counter()
            try:
                status = str(httpx.post(f"{url}/predict", json=record, headers=AUTH, timeout=5).status_code)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            slowest = max(slowest, time.perf_counter() - started)
            outcomes[status] = outcomes.get(status, 0) + 1
    finally:
        for client in clients:
            client.stdin.close()  # type: ignore[union-attr]
            client.wait(30)
    text = log.read_text(errors="replace")
    return {
        "idle_opened": sum(o["opened"] for o in opened),
        "new_predicts": outcomes,
        "slowest_new_predict_ms": round(slowest * 1000),
        "emfile_log_lines": text.count("Too many open files"),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--idle", type=int, default=20_000)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        store = build_fraud_store(state / "store")
        for kind in ("uvicorn", "mlplug"):
            with server(kind, store.url, state) as (url, proc):
                load = throughput(url, args.duration)
                attack = header_attack(url, proc.pid)
                flood = idle_flood(url, args.idle, state / f"{kind}.log")
            results[kind] = {
                "req_per_s": round(load["throughput_rps"]),
                "p99_ms": round(load["latency_ms"]["p99"], 2),
                **attack,
                **flood,
            }
    print(json.dumps(results, indent=2))
    print(
        "| server | req/s | p99 ms | RSS before -> peak (MB) | /predict p50 / max ms under 4x113 MB "
        "headers | MB of one header read | new /predict with idle connections open |"
    )
    print("|---|---:|---:|---|---|---:|---|")
    for kind, r in results.items():
        print(
            f"| {kind} | {r['req_per_s']:,} | {r['p99_ms']} | {r['rss_before_mb']} -> {r['rss_peak_mb']} "
            f"| {r['predict_p50_ms']} / {r['predict_max_ms']} ({r['predict_failed']} failed) "
            f"| {r['most_read_by_one_attacker_mb']} | {r['new_predicts']} ({r['idle_opened']:,} open, "
            f"{r['emfile_log_lines']} EMFILE lines) |"
        )


if __name__ == "__main__":
    main()
