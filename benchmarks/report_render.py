"""Render time and size of a training report for a 100k-row run.

A synthetic binary data set (100,000 rows, 6 numeric, 3 categorical and 1 boolean feature,
~3% positives), a 20% holdout with fake but realistic predictions of three candidates,
20 tuning trials and 5 earlier versions. Only the builtin sections render (no task plugin
is loaded), and ``pip check`` is measured separately because it is a subprocess.

    .venv/bin/python benchmarks/report_render.py [--rows 100000] [--out report.html]

Targets (issue 6): under 20 s and under 5 MB.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mlplug.dataset import Dataset
from mlplug.environment import snapshot
from mlplug.plugins import new_plugins
from mlplug.registry import ModelVersion
from mlplug.reporting import ReportContext, build_report
from mlplug.reporting.doctor import pip_check
from mlplug.schema import Column, Role, Schema
from mlplug.task import BusinessValue, Explanation, Metrics, TaskType

TIME_TARGET_S = 20.0
SIZE_TARGET_MB = 5.0


class BenchTask(TaskType):
    """Only its name and description are read by the builtin sections."""

    name = "bench"
    description = "synthetic 100k-row benchmark task"

    def load(self, url, options):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    synthesize = create_model = create_baseline = load_model = search_space = load  # type: ignore[assignment]
    evaluate = business_value = explain = load  # type: ignore[assignment]


def make_dataset(rows: int, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    numeric = {f"num_{i}": rng.lognormal(i % 3, 1.0, rows) for i in range(6)}
    numeric["num_1"][rng.random(rows) < 0.05] = np.nan  # some missing values
    cats = {
        "country": rng.choice([f"C{i:02d}" for i in range(40)], rows, p=_zipf(40)),
        "channel": rng.choice(["web", "app", "store", "phone"], rows),
        "segment": rng.choice(list("ABCDEFGH"), rows),
    }
    flag = rng.random(rows) < 0.2
    logit = -4 + 0.6 * np.log1p(numeric["num_0"]) + 1.5 * flag + (cats["channel"] == "phone") * 0.8
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    frame = pd.DataFrame({**numeric, **cats, "flag": flag.astype(float), "label": y})
    schema = Schema(
        features=(
            *(Column(n, Role.NUMERIC) for n in numeric),
            *(Column(n, Role.CATEGORICAL) for n in cats),
            Column("flag", Role.BOOLEAN),
        ),
        target="label",
        classes=("legit", "positive"),
    )
    return Dataset(schema.validate(frame, "synthetic"), schema, "synthetic benchmark data")


def _zipf(n: int) -> np.ndarray:
    w = 1 / np.arange(1, n + 1)
    return w / w.sum()


def make_context(rows: int) -> ReportContext:
    data = make_dataset(rows)
    rng = np.random.default_rng(1)
    n_hold = rows // 5
    y = data.y[-n_hold:]
    predictions = pd.DataFrame({"y": y})
    for who, noise in (("registered", 0.8), ("baseline", 1.4), ("champion", 1.0)):
        score = 1 / (1 + np.exp(-(2.5 * y - 3 + rng.normal(0, noise, n_hold))))
        predictions[f"{who}:legit"] = 1 - score
        predictions[f"{who}:positive"] = score

    def metrics(pr_auc: float) -> Metrics:
        return Metrics({"pr_auc": pr_auc, "roc_auc": pr_auc + 0.2, "recall": 0.6}, "pr_auc", threshold=0.35)

    history = [
        ModelVersion(
            task="bench", version=v, created_at=f"2025-01-0{v}T10:00:00+00:00", kind="model",
            params={"depth": 6}, metrics={"pr_auc": 0.5 + v / 50}, primary_metric="pr_auc",
            higher_is_better=True, threshold=0.4, dataset_hash=f"{v:064x}", schema={}, files=[],
            info={"rows": {"holdout": n_hold}},
        )
        for v in range(1, 6)
    ]  # fmt: skip
    trials = [
        {
            "trial_id": f"t{i:02d}", "params": {"depth": 3 + i % 6, "learning_rate": 0.01 * (1 + i)},
            "score": 0.5 + 0.2 * np.sin(i), "steps": 10 if i % 3 else 3, "seconds": 30.0 + i,
            "stopped_early": i % 3 == 0, "error": None,
        }
        for i in range(20)
    ]  # fmt: skip
    importance = {c: float(rng.normal()) for c in data.schema.feature_names}
    return ReportContext(
        task="bench",
        task_type=BenchTask(),
        candidate_kind="model",
        params={"depth": 6, "learning_rate": 0.05},
        dataset=data,
        dataset_hash=data.content_hash(),
        split_rows={"train": rows - 2 * n_hold, "valid": n_hold, "holdout": n_hold},
        split_method="stratified",
        holdout=metrics(0.62),
        other=metrics(0.48),
        other_kind="baseline",
        champion=metrics(0.58),
        champion_version=5,
        validation={"model": metrics(0.63), "baseline": metrics(0.47)},
        trials=trials,
        tuning_seconds=640.0,
        business_value=BusinessValue(81234.0, "EUR", 0.0, "saves money", {"reviews": 1200.0}),
        champion_value=BusinessValue(70000.0, "EUR", 0.0, "", {"reviews": 1500.0}),
        champion_value_basis="on the same holdout rows",
        explanation=Explanation("mean |attribution|", importance, [importance] * 200),
        environment=snapshot(),
        environment_source="recorded during this benchmark run",
        pip_check=None,  # measured separately below
        plugins=new_plugins(load_entry_points=False).infos(),
        history=history,
        current_champion=5,
        predictions=predictions,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    plugins = new_plugins(load_entry_points=False)
    t0 = time.perf_counter()
    ctx = make_context(args.rows)
    t1 = time.perf_counter()
    t_pip = time.perf_counter()
    ctx.pip_check = pip_check()
    t_pip = time.perf_counter() - t_pip
    report = build_report(ctx, plugins)
    t2 = time.perf_counter()
    size_mb = len(report.html.encode()) / 1e6
    print(f"python {platform.python_version()}, {platform.platform()}")
    print(f"rows {args.rows:,}: context {t1 - t0:.2f} s (data generation, not part of the target)")
    print(f"pip check {t_pip:.2f} s")
    print(f"render {report.seconds:.2f} s, total with pip check {t2 - t1:.2f} s; size {size_mb:.2f} MB")
    for s in report.sections:
        print(f"  {s.name:<12} {s.seconds:6.2f} s  {'FAILED ' + str(s.error) if s.error else ''}")
    images = report.html.count("<img ")
    print(f"images {images}")
    ok = t2 - t1 < TIME_TARGET_S and size_mb < SIZE_TARGET_MB
    print(f"targets (< {TIME_TARGET_S:.0f} s, < {SIZE_TARGET_MB:.0f} MB): {'met' if ok else 'MISSED'}")
    if args.out:
        args.out.write_text(report.html, encoding="utf-8")


if __name__ == "__main__":
    main()
