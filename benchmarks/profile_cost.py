"""Benchmark: what traffic profiling costs the fraud server, one configuration per run.

    .venv/bin/python benchmarks/profile_cost.py prepare DIR
    flock -x /tmp/mlplug-cpu.lock .venv/bin/python benchmarks/profile_cost.py run DIR on
    flock -x /tmp/mlplug-cpu.lock .venv/bin/python benchmarks/profile_cost.py run DIR off
    .venv/bin/python benchmarks/profile_cost.py summary DIR

``prepare`` trains and promotes the fraud model of ``serve_fraud.py`` (default parameters,
20,000 synthetic rows) in ``DIR`` and writes its 512 request bodies. ``run`` serves it with
traffic profiles at the default (``on``), with ``MLPLUG_MONITORING=false`` (``off``), or with
extra ``MLPLUG_*`` settings (``--env``), server pinned to core 0 and ``mlplug loadtest`` to
core 1, and appends one JSON line to ``DIR/runs.jsonl``:

- ``rate``: at a fixed request rate below saturation (``--rate``, 3,000 req/s), the server's
  CPU time per answered request (user + system, from ``/proc``), which other jobs on the
  machine disturb far less than throughput;
- ``saturated``: throughput and latency at ``--concurrency`` 8, as ``serve_fraud.py``.

``summary`` prints the median of every configuration and the cost of each against ``off``.
Each ``run`` is one configuration, so that an exclusive lock is held for about 40 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.serve_fraud import API_KEY, _server, _taskset, _train, serve_command
from mlplug.testing.servers import LOOPBACK, OFFLINE_ENV, free_port

BIN = Path(sys.executable).parent
CONFIGS = {"on": {}, "off": {"MLPLUG_MONITORING": "false"}}


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _server_pid(port: int) -> int:
    """The process that listens on ``port`` (``taskset`` execs the server in place)."""
    out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True).stdout
    return int(out.split("pid=")[1].split(",")[0])


def _loadtest(url: str, bodies: Path, *, duration: float, warmup: float, extra: list[str]) -> dict:
    cmd = [
        *_taskset(1), str(BIN / "mlplug"), "loadtest", url, "--body", str(bodies),
        "--duration", str(duration), "--warmup", str(warmup), "--json", *extra,
    ]  # fmt: skip
    env = {**os.environ, "MLPLUG_API_KEY": API_KEY}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=duration + warmup + 120)
    if out.returncode not in (0, 1):
        raise RuntimeError(f"loadtest failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout)


def prepare(directory: Path, rows: int) -> None:
    import orjson

    from mlplug.loadtest import task_bodies

    directory.mkdir(parents=True, exist_ok=True)
    home, store = directory / "home", (directory / "store").as_uri()
    os.environ.update({"MLPLUG_HOME": str(home), "MLPLUG_STORE": store, "MLPLUG_LOAD_PLUGINS": "fraud"})
    _train(home, store, rows)
    records = [orjson.loads(b) for b in task_bodies("fraud", count=512, seed=1)]
    (directory / "records.jsonl").write_bytes(b"\n".join(orjson.dumps(r) for r in records))


def run(directory: Path, name: str, args: argparse.Namespace) -> dict:
    extra_env = dict(CONFIGS.get(name, {}))
    for item in args.env:
        key, _, value = item.partition("=")
        extra_env[key] = value
    port = free_port()
    serve = serve_command("fraud", port)
    env = {
        **os.environ,
        "MLPLUG_HOME": str(directory / "home"),
        "MLPLUG_STORE": (directory / "store").as_uri(),
        "MLPLUG_LOAD_PLUGINS": "fraud",
        "MLPLUG_API_KEYS": API_KEY,
        **extra_env,
    }
    url = f"http://{LOOPBACK}:{port}/predict"
    bodies = directory / "records.jsonl"
    result: dict = {
        "config": name,
        "env": extra_env,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    result["load_before"] = os.getloadavg()[0]
    with (
        tempfile.TemporaryDirectory(prefix="mlplug-profile-cost-") as tmp,
        _server(serve, env, f"http://{LOOPBACK}:{port}/readyz", Path(tmp) / "serve.log"),
    ):
        pid = _server_pid(port)
        _loadtest(url, bodies, duration=args.warmup, warmup=0, extra=["--concurrency", "8"])
        cpu = _cpu_seconds(pid)
        fixed = _loadtest(
                url, bodies, duration=args.duration, warmup=0,
                extra=["--concurrency", "8", "--rate", str(args.rate)],
            )  # fmt: skip
        cpu = _cpu_seconds(pid) - cpu
        answered = fixed["requests"] - fixed["errors"]
        result["rate"] = {
            "requests_per_second": fixed["throughput_rps"],
            "cpu_us_per_request": round(cpu / answered * 1e6, 2),
            "cpu_share": round(cpu / args.duration, 3),
            "p99_ms": fixed["latency_ms"]["p99"],
            "errors": fixed["errors"],
        }
        saturated = _loadtest(
            url, bodies, duration=args.duration, warmup=args.warmup, extra=["--concurrency", "8"]
        )
        result["saturated"] = {
            "requests_per_second": saturated["throughput_rps"],
            "p99_ms": saturated["latency_ms"]["p99"],
            "errors": saturated["errors"],
        }
    result["load_after"] = os.getloadavg()[0]
    with open(directory / "runs.jsonl", "a") as out:
        out.write(json.dumps(result) + "\n")
    return result


def summary(directory: Path) -> str:
    runs = [json.loads(line) for line in (directory / "runs.jsonl").read_text().splitlines() if line]
    by: dict[str, list[dict]] = {}
    for r in runs:
        by.setdefault(r["config"], []).append(r)

    def med(config: str, part: str, key: str) -> float:
        return statistics.median(r[part][key] for r in by[config])

    lines = [
        "| config | runs | CPU µs/request at fixed rate (all runs) | median | saturated req/s (all runs) "
        "| median | throughput cost vs off | CPU cost vs off |",
        "|---|---:|---|---:|---|---:|---:|---:|",
    ]
    for config, rs in by.items():
        cpu_all = ", ".join(f"{r['rate']['cpu_us_per_request']:.1f}" for r in rs)
        sat_all = ", ".join(f"{r['saturated']['requests_per_second']:,.0f}" for r in rs)
        rps, cpu = med(config, "saturated", "requests_per_second"), med(config, "rate", "cpu_us_per_request")
        cost = cpu_cost = ""
        if "off" in by and config != "off":
            cost = f"{1 - rps / med('off', 'saturated', 'requests_per_second'):.1%}"
            cpu_cost = f"{cpu / med('off', 'rate', 'cpu_us_per_request') - 1:+.1%}"
        lines.append(
            f"| {config} | {len(rs)} | {cpu_all} | {cpu:.1f} | {sat_all} | {rps:,.0f} | {cost} | {cpu_cost} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=("prepare", "run", "summary"))
    parser.add_argument("directory", type=Path)
    parser.add_argument("config", nargs="?", default="on", help="on, off, or a name for --env settings")
    parser.add_argument("--env", action="append", default=[], help="MLPLUG_X=value for the server")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=3000.0)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    args = parser.parse_args()
    os.environ.update(OFFLINE_ENV)
    if args.command == "prepare":
        prepare(args.directory, args.rows)
    elif args.command == "run":
        print(json.dumps(run(args.directory, args.config, args), indent=2))
    else:
        print(summary(args.directory))


if __name__ == "__main__":
    main()
