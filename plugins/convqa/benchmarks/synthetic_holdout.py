"""Fine-tuned transformer vs the TF-IDF baseline on a synthetic holdout, with timings.

    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 .venv/bin/python \
        plugins/convqa/benchmarks/synthetic_holdout.py --train 3000 --out results.json

Training, validation and holdout conversations come from different seeds of the synthetic
generator. Prints one JSON document: macro-F1 and accuracy of both models on the holdout,
per-class F1, fit seconds, inference throughput (conversations per second at batch 1 and
batch 32) and the process's peak resident memory. ``--params`` overrides model parameters
(JSON), e.g. '{"model_name_or_path": "tiny", "learning_rate": 0.002, "epochs": 20}'.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

from mlplug_convqa import ConvQATask
from mlplug_convqa.baseline import TfidfBaseline

from mlplug.dataset import Dataset
from mlplug.task import Explanation, Model


def _scores(task: ConvQATask, model: Model, holdout: Dataset) -> dict[str, Any]:
    proba = model.predict_proba(holdout.X)
    metrics = task.evaluate(holdout, proba)
    value = task.business_value(holdout, proba, metrics)
    return {
        "macro_f1": round(metrics.score, 4),
        "accuracy": round(metrics.values["accuracy"], 4),
        "f1_per_class": {k: round(v["f1"], 4) for k, v in metrics.details["per_class"].items()},
        "reviewer_hours_saved_per_1000": round(value.value, 1),
        "auto_accept_share": round(value.details["auto_accept_share"], 4),
    }


def _top_words(explanation: Explanation, classes: tuple[str, ...], k: int = 6) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {c: [] for c in classes}
    for key in explanation.global_importance:  # already sorted by push within each class
        cls, _, word = key.partition(":")
        if len(out[cls]) < k:
            out[cls].append(word)
    return out


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _throughput(model: Model, holdout: Dataset, batch: int, rows: int) -> float:
    X = holdout.X.iloc[:rows]  # noqa: N806
    started = time.perf_counter()
    for start in range(0, len(X), batch):
        model.predict_proba(X.iloc[start : start + batch])
    return round(len(X) / (time.perf_counter() - started), 1)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train", type=int, default=3000, help="training conversations")
    parser.add_argument("--valid", type=int, default=300, help="validation conversations (best epoch)")
    parser.add_argument("--holdout", type=int, default=1000, help="holdout conversations")
    parser.add_argument("--params", default="{}", help="JSON overrides of the default model params")
    parser.add_argument("--baseline-c", type=float, nargs="+", default=[1.0, 10.0, 100.0])
    parser.add_argument("--drift", type=float, default=0.5, help="drift of a second, drifted holdout")
    parser.add_argument("--skip-model", action="store_true", help="only the baseline")
    parser.add_argument("--out", help="also write the JSON result to this file")
    parser.add_argument("--save", help="save the fitted model into this directory")
    args = parser.parse_args(argv)

    task = ConvQATask()
    train = task.synthesize(args.train, seed=1)
    valid = task.synthesize(args.valid, seed=3)
    holdout = task.synthesize(args.holdout, seed=2)
    drifted = task.synthesize(args.holdout, seed=4, drift=args.drift)
    result: dict[str, Any] = {"rows": {"train": len(train), "valid": len(valid), "holdout": len(holdout)}}

    # The baseline at its best C on the holdout: the strongest reference, not a straw man.
    baselines, fitted = [], {}
    for c in args.baseline_c:
        model = TfidfBaseline(train.schema, {"C": c})
        started = time.perf_counter()
        model.fit(train)
        fit_seconds = round(time.perf_counter() - started, 1)
        scores = {"C": c, "fit_seconds": fit_seconds, **_scores(task, model, holdout)}
        drift_score = task.evaluate(drifted, model.predict_proba(drifted.X)).score
        scores[f"drift_{args.drift:g}_macro_f1"] = round(drift_score, 4)
        baselines.append(scores)
        fitted[c] = model
    result["baseline"] = max(baselines, key=lambda b: b["macro_f1"])
    explanation = task.explain(fitted[result["baseline"]["C"]], holdout, rows=200)
    result["baseline"]["top_words_per_class"] = _top_words(explanation, holdout.schema.classes)
    result["baseline_all_C"] = [{"C": b["C"], "macro_f1": b["macro_f1"]} for b in baselines]

    if not args.skip_model:
        params = {**task.default_params(), **json.loads(args.params)}
        model = task.create_model(train.schema, params)
        epochs: list[dict[str, float]] = []
        cpu_before = _cpu_seconds()
        started = time.perf_counter()
        model.fit(
            train, valid, progress=lambda step, score: epochs.append({"epoch": step, "valid_macro_f1": score})
        )
        fit_seconds = time.perf_counter() - started
        fit_cpu = _cpu_seconds() - cpu_before
        result["model"] = {
            "params": params,
            "fit_seconds": round(fit_seconds, 1),
            "fit_minutes": round(fit_seconds / 60, 2),
            # CPU seconds over 2: the wall time on 2 cores nobody else uses, if both stay busy
            "fit_cpu_seconds": round(fit_cpu, 1),
            "fit_minutes_on_2_free_cores_estimate": round(fit_cpu / 2 / 60, 2),
            "history": getattr(model, "history", epochs),
            **_scores(task, model, holdout),
            f"drift_{args.drift:g}_macro_f1": round(
                task.evaluate(drifted, model.predict_proba(drifted.X)).score, 4
            ),
            "top_words_per_class": _top_words(task.explain(model, holdout, rows=60), holdout.schema.classes),
            "conversations_per_second_batch_1": _throughput(model, holdout, 1, 32),
            "conversations_per_second_batch_32": _throughput(model, holdout, 32, 256),
        }
        if args.save:
            Path(args.save).mkdir(parents=True, exist_ok=True)
            model.save(Path(args.save))
        result["model_beats_baseline_by"] = round(
            result["model"]["macro_f1"] - result["baseline"]["macro_f1"], 4
        )
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    text = json.dumps(result, indent=2, default=str)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
