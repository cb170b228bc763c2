"""Benchmark: how long `mlplug` waits for a black-holed S3 endpoint, and how soon a training
run on a table at the column limit stops on SIGTERM.

    .venv/bin/python benchmarks/store_faults.py blackhole [--env MLPLUG_S3_READ_TIMEOUT=60 ...]
    .venv/bin/python benchmarks/store_faults.py sigterm [--after 18 28 45 60]

``blackhole``: `mlplug models list fraud` against an endpoint that accepts connections and
never answers (``FaultProxy.blackhole``), with the default timeouts unless ``--env`` sets
others; reports the seconds until the command exits and its message.

``sigterm``: `mlplug train fraud --trials 0` on a 2,000-row table with 1,992 columns (just
under ``MLPLUG_MAX_COLUMNS``), a temporary Prefect server as a user without one gets; SIGTERM
after each ``--after`` seconds (a fresh run each), reports the seconds from SIGTERM to exit.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlplug.testing.faults import FaultProxy
from mlplug.testing.servers import OFFLINE_ENV

MLPLUG = str(Path(sys.executable).with_name("mlplug"))


def blackhole(extra: list[str]) -> None:
    with FaultProxy("http://127.0.0.1:9") as proxy, tempfile.TemporaryDirectory() as home:
        proxy.blackhole = True
        env = {
            **os.environ, **OFFLINE_ENV, "MLPLUG_HOME": home, "MLPLUG_LOAD_PLUGINS": "fraud",
            "MLPLUG_STORE": "s3://bucket/store", "MLPLUG_S3_ENDPOINT_URL": proxy.url,
            "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1",
            **dict(item.split("=", 1) for item in extra),
        }  # fmt: skip
        started = time.monotonic()
        out = subprocess.run([MLPLUG, "models", "list", "fraud"], capture_output=True, text=True, env=env)
        print(f"exit {out.returncode} after {time.monotonic() - started:.1f} s")
        print(out.stderr.strip())


def sigterm(delays: list[float]) -> None:
    import numpy as np
    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        frame = pd.DataFrame(rng.normal(size=(2000, 1990)), columns=[f"f{i}" for i in range(1990)])
        frame["amount"] = rng.gamma(2, 50, 2000)
        frame["is_fraud"] = (rng.random(2000) < 0.1).astype(int)
        data = Path(tmp) / "wide.csv"
        frame.to_csv(data, index=False)
        for delay in delays:
            home = Path(tmp) / f"home-{delay}"
            env = {**os.environ, **OFFLINE_ENV, "MLPLUG_HOME": str(home), "MLPLUG_LOAD_PLUGINS": "fraud"}
            env.pop("PREFECT_API_URL", None)
            env.pop("MLPLUG_STORE", None)
            with open(Path(tmp) / f"run-{delay}.log", "w") as log:
                proc = subprocess.Popen(
                    [MLPLUG, "train", "fraud", "--data", str(data), "--trials", "0"],
                    stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                )  # fmt: skip
                try:
                    proc.wait(timeout=delay)
                    print(f"SIGTERM after {delay:g} s: the run had finished")
                    continue
                except subprocess.TimeoutExpired:
                    pass
                proc.send_signal(signal.SIGTERM)
                sent = time.monotonic()
                try:
                    proc.wait(timeout=300)
                    stopped = time.monotonic() - sent
                    print(f"SIGTERM after {delay:g} s: exit {proc.returncode} {stopped:.1f} s later")
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    print(f"SIGTERM after {delay:g} s: still running 300 s later (killed)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    hole = sub.add_parser("blackhole")
    hole.add_argument("--env", nargs="*", default=[], help="NAME=VALUE settings for the command")
    term = sub.add_parser("sigterm")
    term.add_argument("--after", nargs="*", type=float, default=[18, 28, 45, 60])
    args = parser.parse_args()
    if args.what == "blackhole":
        blackhole(args.env)
    else:
        sigterm(args.after)


if __name__ == "__main__":
    main()
