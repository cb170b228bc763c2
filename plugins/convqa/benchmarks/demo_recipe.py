"""Benchmark: the demo's MiniLM recipe vs the TF-IDF baseline on the demo's own split.

``mlplug demo`` trains convqa with ``ConvQATask().demo_settings()``: that many synthetic rows,
split as the train flow splits them (``mlplug.training.split``: holdout 20 %, validation
20 % of the rest, stratified, the run's seed), no tuning, the settings' model parameters.
This script fits the same two candidates on the same parts outside Prefect, for a few
seeds, and prints validation and holdout macro-F1 of both, the fit times and the CPU
seconds of the transformer's fit (the figure that does not depend on other jobs).

    HF_HUB_OFFLINE=1 .venv/bin/python plugins/convqa/benchmarks/demo_recipe.py --seeds 0 1 2
    ... --rows 2000 --params '{"freeze_layers": 3, "epochs": 3}'   # try another recipe

Seed 0 is the demo's training run; the demo's refit trains on seed 102 with drift 1.0
(``--seeds 102 --drift 1``).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
from mlplug_convqa import ConvQATask
from mlplug_convqa.metrics import macro_f1

from mlplug import training
from mlplug.dataset import Dataset
from mlplug.task import Model


def _f1(model: Model, data: Dataset) -> float:
    pred = model.predict_proba(data.X).argmax(axis=1)
    return round(macro_f1(np.asarray(data.y), pred, len(data.schema.classes)), 4)


def run_seed(task: ConvQATask, rows: int, seed: int, drift: float, params: dict[str, Any]) -> dict[str, Any]:
    data = task.synthesize(rows, seed=seed, drift=drift)
    parts = training.split(data, holdout=0.2, seed=seed)
    started = time.perf_counter()
    baseline = task.create_baseline(data.schema)
    baseline.fit(parts.train, parts.valid)
    baseline_s = time.perf_counter() - started
    model = task.create_model(data.schema, params)
    started, cpu = time.perf_counter(), time.process_time()
    model.fit(parts.train, parts.valid)
    fit_s, fit_cpu = time.perf_counter() - started, time.process_time() - cpu
    result = {
        "seed": seed,
        "drift": drift,
        "rows": {"train": len(parts.train), "valid": len(parts.valid), "holdout": len(parts.holdout)},
        "tfidf": {"valid": _f1(baseline, parts.valid), "holdout": _f1(baseline, parts.holdout)},
        "minilm": {
            "valid": _f1(model, parts.valid),
            "holdout": _f1(model, parts.holdout),
            "valid_by_epoch": [round(h["valid_macro_f1"], 4) for h in getattr(model, "history", [])],
        },
        "fit_seconds": {"tfidf": round(baseline_s, 1), "minilm": round(fit_s, 1)},
        "minilm_fit_cpu_seconds": round(fit_cpu, 1),
    }
    result["minilm_wins_valid"] = result["minilm"]["valid"] > result["tfidf"]["valid"]
    result["minilm_wins_holdout"] = result["minilm"]["holdout"] > result["tfidf"]["holdout"]
    return result


def main() -> None:
    task = ConvQATask()
    demo = task.demo_settings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=demo["rows"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--drift", type=float, default=0.0)
    parser.add_argument("--params", default="{}", help="JSON: parameters on top of the demo's")
    parser.add_argument("--out", default="", help="also write the JSON here")
    args = parser.parse_args()
    params = {**demo["params"], **json.loads(args.params)}
    results = []
    for seed in args.seeds:
        results.append(run_seed(task, args.rows, seed, args.drift, params))
        print(json.dumps(results[-1]), flush=True)
    report = {"rows": args.rows, "params": params, "seeds": results}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
