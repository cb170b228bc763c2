"""Benchmark: what the final fit on every row (``refit_with_holdout``) is worth.

    flock -x /tmp/mlplug-cpu.lock .venv/bin/python benchmarks/final_fit.py \
        [--rows 5000] [--seeds 1 2 3 4 5] [--fresh 60000]

For each seed, ``mlplug train fraud --rows R --seed S --trials 0`` runs twice, with and
without ``--refit-with-holdout``, each into a store of its own; both registered versions
then score the same ``--fresh`` rows of the task's generator (seed 777), which neither saw.
Prints PR-AUC and log-loss per seed and their means.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlplug.processes import OFFLINE_ENV

MODES = ("refit-with-holdout", "no-refit-with-holdout")


def train(store: Path, rows: int, seed: int, mode: str) -> dict:
    env = {**os.environ, **OFFLINE_ENV, "MLPLUG_HOME": str(store / "home"), "MLPLUG_STORE": store.as_uri()}
    command = ["mlplug", "train", "fraud", "--rows", str(rows), "--seed", str(seed), "--trials", "0"]
    out = subprocess.run(
        [*command, f"--{mode}", "--json"], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def score(store: Path, fresh) -> tuple[float, float]:
    from sklearn.metrics import average_precision_score, log_loss

    from mlplug.plugins import get_plugins
    from mlplug.runtime import open_registry
    from mlplug.scoring import load_version

    os.environ["MLPLUG_STORE"] = store.as_uri()
    version = load_version(get_plugins().task("fraud"), open_registry(), 1)
    proba = version.model.predict_proba(fresh.X)[:, 1]
    return float(average_precision_score(fresh.y, proba)), float(log_loss(fresh.y, proba))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--fresh", type=int, default=60_000)
    args = parser.parse_args()
    os.environ.update(OFFLINE_ENV)
    os.environ["MLPLUG_LOAD_PLUGINS"] = "fraud"
    from mlplug.plugins import get_plugins

    fresh = get_plugins().task("fraud").synthesize(args.fresh, seed=777)
    results: dict[str, list[tuple[float, float]]] = {m: [] for m in MODES}
    print("| seed | mode | registered | fitted rows | PR-AUC on fresh rows | log-loss |")
    print("|---:|---|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for mode in MODES:
                store = Path(tmp) / f"{mode}-{seed}"
                summary = train(store, args.rows, seed, mode)
                pr_auc, loss = score(store, fresh)
                results[mode].append((pr_auc, loss))
                fitted = f"{summary['fit_rows']:,}"
                print(f"| {seed} | {mode} | {summary['kind']} | {fitted} | {pr_auc:.4f} | {loss:.4f} |")
    for mode in MODES:
        pr = [r[0] for r in results[mode]]
        ll = [r[1] for r in results[mode]]
        print(f"{mode}: mean PR-AUC {sum(pr) / len(pr):.4f}, mean log-loss {sum(ll) / len(ll):.4f}")


if __name__ == "__main__":
    main()
