"""Benchmark: the whole train flow for fraud on synthetic data, and how its cost grows with
the rows (issue targets: 100k rows, 8 trials, 2 cores, < 5 min, orchestration overhead
< 20 %, peak memory < 4 GB; 1M rows with 4 trials < 15 min and < 8 GB).

    .venv/bin/python benchmarks/train_fraud.py [--rows 100000] [--trials 8] [--cpus 2]
    .venv/bin/python benchmarks/train_fraud.py --rows 10000 100000 1000000 --trials 4 \\
        --plot benchmarks/train_fraud_growth.png

Each size runs against a real Prefect server on 127.0.0.1 (started here, not timed) and a
fresh file:// store, in a process of its own (so one size's memory does not carry into the
next). Prints a JSON summary per size: wall time, each step's time (the step's own work, as
the run's record keeps it) and each step's peak memory (PSS of the process tree including
Ray's workers, not the Prefect server, while the step ran). With several sizes it also prints
a markdown table and draws the plot.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.stage_memory import MemoryTimeline, step_intervals
from mlplug.testing.servers import OFFLINE_ENV, prefect_server

#: Between the explain and report steps: the reference profile and holdout predictions.
BETWEEN = "profile+predictions"
#: The steps of the train flow, in order.
STEPS = (
    "load", "version", "split", "tune", "fit", "select", "refit", "evaluate", "final fit", "explain", BETWEEN,
    "report", "register", "promote",
)  # fmt: skip
#: The steps that fit or score models (the rest is data handling, reports and orchestration).
COMPUTE = ("tune", "fit", "select", "refit", "evaluate", "final fit")


def run_one(rows: int, trials: int, cpus: int) -> dict[str, Any]:
    os.environ.update(OFFLINE_ENV)
    with tempfile.TemporaryDirectory() as tmp, prefect_server(Path(tmp) / "prefect") as server:
        os.environ.update(server.env)
        os.environ["MLPLUG_HOME"] = str(Path(tmp) / "home")
        os.environ["MLPLUG_STORE"] = (Path(tmp) / "store").as_uri()
        os.environ["MLPLUG_LOAD_PLUGINS"] = "fraud"
        from flows.train import train

        server_pid = _server_pid(server.api_url)
        started = time.perf_counter()
        with MemoryTimeline(exclude={server_pid} if server_pid else set()) as memory:
            state = train(task="fraud", rows=rows, trials=trials, cpus=cpus, return_state=True)
        wall = time.perf_counter() - started
        summary = state.result()
        intervals = step_intervals(str(state.state_details.flow_run_id))
    t = dict(summary["timings"])
    # The monitoring reference profile and the holdout predictions are made between the
    # explain and report steps, outside any step: measured as that gap.
    t[BETWEEN] = max(0.0, intervals["report"][0] - intervals["explain"][1])
    intervals[BETWEEN] = (intervals["explain"][1], intervals["report"][0])
    compute = sum(t.get(step, 0.0) for step in COMPUTE)
    return {
        "rows": rows,
        "trials": trials,
        "cpus": cpus,
        "wall_seconds": round(wall, 1),
        f"compute_seconds ({'+'.join(COMPUTE)})": round(compute, 1),
        "orchestration_overhead_share": round((wall - compute) / wall, 3),
        "overhead_share_counting_explain_as_compute": round((wall - compute - t["explain"]) / wall, 3),
        "outside_steps_seconds": round(wall - sum(t.values()), 2),
        "timings": {k: round(v, 2) for k, v in t.items()},
        "step_peak_memory_gib": {
            step: round(memory.peak_between(*intervals[step]), 2) for step in STEPS if step in intervals
        },
        "peak_memory_gib": round(memory.peak_gib, 2),
        "registered": summary["kind"],
        "holdout": {k: round(v, 4) for k, v in summary["metrics"].items()},
        "candidates_holdout": {
            kind: {k: round(v, 4) for k, v in values.items()}
            for kind, values in summary["candidates"].items()
        },
    }


def _server_pid(api_url: str) -> int | None:
    """The Prefect server's process (a child of this one, listening on the API's port)."""
    import psutil

    port = int(api_url.rsplit(":", 1)[1].split("/")[0])
    for child in psutil.Process().children(recursive=True):
        try:
            if any(c.laddr and c.laddr.port == port for c in child.net_connections("tcp")):
                return child.pid
        except psutil.Error:
            continue
    return None


def growth_table(results: list[dict[str, Any]]) -> str:
    """Markdown: seconds and peak GiB of each step at each size."""
    sizes = [f"{r['rows']:,} rows" for r in results]
    lines = [
        "| step | " + " | ".join(f"{s}: s | {s}: GiB" for s in sizes) + " |",
        "|---|" + "---:|---:|" * len(results),
    ]
    for step in STEPS:
        cells = []
        for r in results:
            cells.append(f"{r['timings'].get(step, 0):.2f}")
            cells.append(f"{r['step_peak_memory_gib'].get(step, 0):.2f}")
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    cells = []
    for r in results:
        cells += [f"**{r['wall_seconds']:.1f}**", f"**{r['peak_memory_gib']:.2f}**"]
    lines.append("| whole flow (wall, peak) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(results: list[dict[str, Any]], path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2), dpi=110)
    time_ax, mem_ax = fig.subplots(1, 2)
    rows = [r["rows"] for r in results]
    for step in STEPS:
        seconds = [max(r["timings"].get(step, 0), 1e-3) for r in results]
        if max(seconds) < 0.05:
            continue
        time_ax.plot(rows, seconds, marker="o", label=step)
        mem_ax.plot(rows, [r["step_peak_memory_gib"].get(step, 0) for r in results], marker="o", label=step)
    time_ax.plot(rows, [r["wall_seconds"] for r in results], "k--", marker="s", label="whole flow")
    linear = [results[0]["wall_seconds"] * n / rows[0] for n in rows]
    time_ax.plot(rows, linear, color="0.7", linestyle=":", label="linear from the smallest")
    setup = f"{results[0]['trials']} trials, {results[0]['cpus']} cores"
    time_ax.set(xscale="log", yscale="log", xlabel="rows", ylabel="seconds", title=f"Time per step ({setup})")
    mem_ax.set(xscale="log", xlabel="rows", ylabel="GiB (PSS, process tree)", title="Peak memory per step")
    time_ax.legend(fontsize=7, ncol=2)
    mem_ax.legend(fontsize=7, ncol=2)
    for ax in (time_ax, mem_ax):
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--plot", type=Path, help="with several --rows: draw the growth plot here")
    parser.add_argument("--json-out", type=Path, help="also write the results here")
    args = parser.parse_args()
    if len(args.rows) == 1:
        results = [run_one(args.rows[0], args.trials, args.cpus)]
    else:
        results = []
        for rows in args.rows:  # one process per size: no memory carried over
            with tempfile.NamedTemporaryFile(suffix=".json") as out:
                command = [sys.executable, __file__, "--rows", str(rows), "--trials", str(args.trials),
                           "--cpus", str(args.cpus), "--json-out", out.name]  # fmt: skip
                subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
                results.append(json.loads(Path(out.name).read_text())[0])
    for result in results:
        print(json.dumps(result, indent=2))
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2))
    if len(results) > 1:
        print(growth_table(results))
        if args.plot:
            plot(results, args.plot)


if __name__ == "__main__":
    main()
