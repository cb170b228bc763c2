"""Benchmark: what ``mlplug train fraud`` registers vs the first models an analyst would try,
on public binary tables that pip packages ship (see ``benchmarks/public_tables.py``).

    flock -x /tmp/mlplug-cpu.lock .venv/bin/python benchmarks/fraud_public.py \\
        [--tables Default,Caravan] [--trials 4] [--out benchmarks/fraud_public.json] \\
        [--before benchmarks/fraud_public_before.json] [--keep DIR] [--update]

Per table: a stratified 70/30 split (fixed seed). The 70 % goes through the real CLI,
``mlplug train fraud --data train.csv --target T --trials 4``, against a Prefect server on
127.0.0.1 and a file:// store of its own; the 30 % is scored through ``mlplug predict`` with
the registered version. On the same 70 % the script fits plain logistic regression (one-hot
categories, standardised numbers, ``LogisticRegression()`` defaults), default
``HistGradientBoostingClassifier`` and default ``CatBoostClassifier``, each in a fresh process
so that its fit time and peak memory are its own. All four are scored on the 30 % with a
paired bootstrap (the same resamples for every method) for 95 % intervals of PR-AUC and of
mlplug's difference to each. ``mlplug`` times are the CLI's wall time and the peak memory
of its whole process tree (Ray workers included).

Prints markdown tables and writes JSON (``--out``), with what mlplug's run stored about its
choice (validation scores, split sizes, trials) for diagnosis. ``--before`` adds the PR-AUC
of an earlier JSON as a column, to compare after a change. ``--update`` merges the tables run
into an existing ``--out`` JSON (replacing theirs) and prints the table for all of them, so a
long run can be split into several holds of the CPU lock, a few tables each.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bootstrap import Interval, interval, paired_intervals
from benchmarks.memory import PeakMemory
from benchmarks.public_tables import TABLES, Table, islp_data_dir, text_columns
from mlplug.testing.servers import OFFLINE_ENV, prefect_server

MLPLUG = "mlplug"
REFERENCES = ("logistic_regression", "hist_gradient_boosting", "catboost")
METHODS = (MLPLUG, *REFERENCES)
SHORT = {
    MLPLUG: "mlplug",
    "logistic_regression": "LR",
    "hist_gradient_boosting": "HGB",
    "catboost": "CatBoost",
}
HOLDOUT_SHARE = 0.3


# -- the three references, each fitted in a fresh process ------------------------------------


def _reference_model(kind: str, numeric: list[str], categorical: list[str]) -> Any:
    if kind == "logistic_regression":
        from sklearn.compose import ColumnTransformer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        encode = ColumnTransformer(
            [("num", StandardScaler(), numeric), ("cat", OneHotEncoder(handle_unknown="ignore"), categorical)]
        )
        return make_pipeline(encode, LogisticRegression())
    if kind == "hist_gradient_boosting":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(random_state=0)  # categories from the category dtype
    if kind == "catboost":
        from catboost import CatBoostClassifier

        return CatBoostClassifier(
            cat_features=categorical, random_seed=0, verbose=False, allow_writing_files=False
        )
    raise ValueError(kind)


def _as_model_input(kind: str, frame: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
    frame = frame.copy()
    for column in categorical:
        values = frame[column].astype(str)
        frame[column] = values.astype("category") if kind == "hist_gradient_boosting" else values
    return frame


def model_inputs(
    kind: str, train: pd.DataFrame, holdout: pd.DataFrame, categorical: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The training and holdout features as ``kind`` takes them (the holdout's columns in the
    training order; for HistGradientBoosting, the same categories in both parts)."""
    X = _as_model_input(kind, train, categorical)  # noqa: N806
    X_hold = _as_model_input(kind, holdout[train.columns], categorical)  # noqa: N806
    if kind == "hist_gradient_boosting":
        for column in categorical:
            X_hold[column] = pd.Categorical(X_hold[column], categories=X[column].cat.categories)
    return X, X_hold


def fit_reference(kind: str, train_csv: str, holdout_csv: str, target: str, categorical: list[str]) -> dict:
    """Runs in a fresh process: fit ``kind`` on the training rows, score the holdout."""
    train = pd.read_csv(train_csv)
    holdout = pd.read_csv(holdout_csv)
    y = train.pop(target).to_numpy()
    numeric = [c for c in train.columns if c not in categorical]
    X, X_hold = model_inputs(kind, train, holdout, categorical)  # noqa: N806
    model = _reference_model(kind, numeric, categorical)
    started = time.perf_counter()
    model.fit(X, y)
    seconds = time.perf_counter() - started
    proba = model.predict_proba(X_hold)[:, 1]
    return {"proba": proba.tolist(), "fit_seconds": seconds, "peak_mib": _own_peak_mib()}


def _own_peak_mib() -> float:
    """This process's peak resident memory since it started. Not ``ru_maxrss``: Linux carries
    that over from the parent through fork and exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status")


def run_reference(kind: str, train_csv: Path, holdout_csv: Path, target: str, categorical: list[str]) -> dict:
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(
            fit_reference, kind, str(train_csv), str(holdout_csv), target, categorical
        ).result()


# -- mlplug through its CLI -------------------------------------------------------------------


def _cli(args: list[str], env: dict[str, str], log: Path) -> tuple[str, float, float]:
    """Run ``mlplug ARGS``; its stdout, wall seconds and peak MiB of its process tree."""
    exe = str(Path(sys.executable).with_name("mlplug"))
    started = time.perf_counter()
    with open(log, "ab") as err:
        proc = subprocess.Popen([exe, *args], stdout=subprocess.PIPE, stderr=err, env=env)
        with PeakMemory(pid=proc.pid) as memory:
            out, _ = proc.communicate()
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"mlplug {' '.join(args)} failed ({proc.returncode}); see {log}")
    return out.decode(), seconds, memory.peak_mib


def _json_document(stdout: str) -> dict[str, Any]:
    """The JSON object that ``--json`` prints last (flow logs may come before it)."""
    start = stdout.rfind("\n{")
    return json.loads(stdout[start + 1 if start >= 0 else stdout.index("{") :])


def run_mlplug(table: Table, work: Path, env: dict[str, str], trials: int, cpus: int) -> dict[str, Any]:
    store = (work / "store").as_uri()
    env = {**env, "MLPLUG_HOME": str(work / "home")}
    log = work / "mlplug.log"
    train_args = ["train", "fraud", "--data", str(work / "train.csv"), "--target", table.target]
    if table.categorical:
        train_args += ["--categorical", ",".join(table.categorical)]
    train_args += ["--trials", str(trials), "--cpus", str(cpus), "--store", store, "--json"]
    out, seconds, peak = _cli(train_args, env, log)
    summary = _json_document(out)
    scored = work / "scored.csv"
    predict_args = ["predict", "fraud", "--data", str(work / "holdout.csv"), "--out", str(scored)]
    _, predict_seconds, _ = _cli(
        [*predict_args, "--model", str(summary["version"]), "--store", store, "--no-profile"], env, log
    )
    return {
        "proba": pd.read_csv(scored)["probability"].to_numpy(),
        "fit_seconds": seconds,
        "peak_mib": peak,
        "predict_seconds": predict_seconds,
        "summary": summary,
        "stored": stored_choice(store, summary["version"]),
    }


def stored_choice(store: str, version: int) -> dict[str, Any]:
    """What the run recorded about its choice, read back through its training record."""
    from mlplug.record import TrainingRecord
    from mlplug.runtime import open_registry

    registry = open_registry(store)
    mv = registry.model("fraud", version)
    record, notes = TrainingRecord.from_store(registry, mv)
    return {
        "rows": record.rows,
        "selection": record.selection,
        "selection_method": record.selection_method,
        "refit_rows": record.refit_rows,
        "calibration": record.calibration.to_dict() if record.calibration else None,
        "registered_params": record.registered.params,
        "threshold": mv.threshold,
        "candidates": {
            c.kind: {
                "valid_pr_auc": c.validation.values.get("pr_auc"),
                "fold_pr_auc": list(c.folds),
                "params": c.params,
                "searched": list(c.searched),
                "inner_holdout_pr_auc": c.holdout.values.get("pr_auc") if c.holdout else None,
            }
            for c in record.candidates
        },
        "trials": [
            {"score": t.score, "steps": t.steps, "stopped_early": t.stopped_early, "params": t.params}
            for t in (record.tuning.trials if record.tuning else [])
        ],
        "record_notes": notes,
    }


# -- one table --------------------------------------------------------------------------------


def split_table(frame: pd.DataFrame, table: Table, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    from sklearn.model_selection import train_test_split

    train, holdout = train_test_split(
        frame, test_size=HOLDOUT_SHARE, stratify=frame[table.target], random_state=seed
    )
    return train.reset_index(drop=True), holdout.reset_index(drop=True)


def calibration(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    clipped = np.clip(p, 1e-15, 1 - 1e-15)
    return {
        "mean_probability": round(float(p.mean()), 4),
        "brier": round(float(np.mean((p - y) ** 2)), 5),
        "log_loss": round(float(-np.mean(y * np.log(clipped) + (1 - y) * np.log(1 - clipped))), 4),
    }


def run_table(
    table: Table, data_dir: Path, work: Path, env: dict[str, str], args: argparse.Namespace
) -> dict[str, Any]:
    frame = table.read(data_dir)
    train, holdout = split_table(frame, table, args.seed)
    work.mkdir(parents=True, exist_ok=True)
    train.to_csv(work / "train.csv", index=False)
    holdout.drop(columns=[table.target]).to_csv(work / "holdout.csv", index=False)
    y = holdout[table.target].to_numpy()
    categorical = text_columns(frame, table)

    runs: dict[str, dict[str, Any]] = {}
    print(f"{table.name}: mlplug train ({args.trials} trials) ...", file=sys.stderr, flush=True)
    runs[MLPLUG] = run_mlplug(table, work, env, args.trials, args.cpus)
    for kind in REFERENCES:
        print(f"{table.name}: {kind} ...", file=sys.stderr, flush=True)
        runs[kind] = run_reference(kind, work / "train.csv", work / "holdout.csv", table.target, categorical)

    scores = {name: np.asarray(run["proba"], dtype=np.float64) for name, run in runs.items()}
    intervals, draws = paired_intervals(y, scores, resamples=args.resamples, seed=args.seed)
    differences = {
        kind: interval(intervals[MLPLUG].estimate - intervals[kind].estimate, draws[MLPLUG] - draws[kind])
        for kind in REFERENCES
    }
    best = max(REFERENCES, key=lambda kind: intervals[kind].estimate)
    summary = runs[MLPLUG]["summary"]
    return {
        "table": table.name,
        "why": table.why,
        "target": table.target,
        "rows": {"train": len(train), "holdout": len(holdout)},
        "positives": {"train": int(train[table.target].sum()), "holdout": int(y.sum())},
        "categorical": categorical,
        "pr_auc": {name: intervals[name].as_dict() for name in METHODS},
        "mlplug_minus": {kind: differences[kind].as_dict() for kind in REFERENCES},
        "best_reference": best,
        "fit_seconds": {name: round(runs[name]["fit_seconds"], 2) for name in METHODS},
        "peak_mib": {name: round(runs[name]["peak_mib"]) for name in METHODS},
        "calibration": {
            "positive_rate": round(float(y.mean()), 4),
            **{name: calibration(y, scores[name]) for name in METHODS},
        },
        "mlplug": {
            "registered_kind": summary["kind"],
            "version": summary["version"],
            "selection": summary.get("selection"),
            "flow_timings": {k: round(v, 2) for k, v in summary.get("timings", {}).items()},
            "predict_seconds": round(runs[MLPLUG]["predict_seconds"], 2),
            **runs[MLPLUG]["stored"],
        },
    }


# -- report -----------------------------------------------------------------------------------


def markdown(results: list[dict[str, Any]], before: dict[str, Any] | None) -> str:
    head = "| table | train rows (pos.) | holdout rows (pos.) | registered |"
    if before:
        head += " mlplug before |"
    head += " mlplug | LR | HGB | CatBoost | mlplug - best of the three |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        ci = {name: str(Interval(**_interval(r["pr_auc"][name]))) for name in METHODS}
        best = r["best_reference"]
        diff = Interval(**_interval(r["mlplug_minus"][best]))
        ci[best] = f"**{ci[best]}**" if diff.estimate < 0 else ci[best]
        if diff.estimate >= 0:
            ci[MLPLUG] = f"**{ci[MLPLUG]}**"
        row = (
            f"| {r['table']} | {r['rows']['train']:,} ({r['positives']['train']}) "
            f"| {r['rows']['holdout']:,} ({r['positives']['holdout']}) | {r['mlplug']['registered_kind']} |"
        )
        if before:
            old = before.get(r["table"])
            row += f" {old['pr_auc'][MLPLUG]['estimate']:.3f} |" if old else " - |"
        row += " " + " | ".join(ci[name] for name in METHODS)
        row += f" | {diff.estimate:+.3f} [{diff.low:+.3f}, {diff.high:+.3f}] vs {SHORT[best]} |"
        lines.append(row)
    lines += [
        "",
        "| table | fit s: mlplug (tune + fit inside) | LR | HGB | CatBoost "
        "| peak MiB: mlplug | LR | HGB | CatBoost |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        t = r["mlplug"]["flow_timings"]
        inside = f" ({t.get('tune', 0):.0f} + {t.get('fit', 0):.0f})" if t else ""
        fit = r["fit_seconds"]
        peak = r["peak_mib"]
        lines.append(
            f"| {r['table']} | {fit[MLPLUG]:.0f}{inside} | {fit['logistic_regression']:.2f} "
            f"| {fit['hist_gradient_boosting']:.2f} | {fit['catboost']:.2f} | {peak[MLPLUG]:,} "
            f"| {peak['logistic_regression']:,} | {peak['hist_gradient_boosting']:,} | {peak['catboost']:,} |"
        )
    return "\n".join(lines)


def _interval(entry: dict[str, float]) -> dict[str, float]:
    return {"estimate": entry["estimate"], "low": entry["low"], "high": entry["high"]}


def merged(earlier: dict[str, Any], now: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``now``'s tables replacing or joining ``earlier``'s, in the order of ``TABLES``; refused
    when the two runs differ in seed, trials or resamples (their rows would not compare)."""
    for key in ("seed", "trials", "resamples"):
        if earlier.get(key) != now[key]:
            raise SystemExit(f"--update: the existing JSON has {key}={earlier.get(key)}, this run {now[key]}")
    by_name = {r["table"]: r for r in earlier["results"]} | {r["table"]: r for r in now["results"]}
    results = [by_name[name] for name in TABLES if name in by_name]
    commands = earlier.get("commands", [earlier.get("command")])
    document = {
        **now,
        "command": now["command"],
        "commands": [*commands, now["command"]],
        "seconds": round(earlier.get("seconds", 0) + now["seconds"], 1),
        "results": results,
    }
    return document, results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--tables", default=",".join(TABLES), help=f"comma-separated; known: {', '.join(TABLES)}"
    )
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="seed of the 70/30 split and the bootstrap")
    parser.add_argument("--resamples", type=int, default=2000, help="paired bootstrap resamples")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/fraud_public.json"))
    parser.add_argument("--before", type=Path, help="an earlier --out JSON to compare with")
    parser.add_argument("--keep", type=Path, help="keep CSVs, stores and logs under this directory")
    parser.add_argument(
        "--update",
        action="store_true",
        help="merge these tables' results into an existing --out (same seed, trials and resamples)",
    )
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.tables.split(",") if n.strip()]
    unknown = sorted(set(names) - set(TABLES))
    if unknown:
        parser.error(f"unknown table(s) {unknown}; known: {', '.join(TABLES)}")
    before = None
    if args.before:
        before = {r["table"]: r for r in json.loads(args.before.read_text())["results"]}

    os.environ.update(OFFLINE_ENV)
    scratch = Path(tempfile.mkdtemp(prefix="mlplug-public-"))
    root = args.keep or scratch
    results = []
    started = time.perf_counter()
    try:
        data_dir = islp_data_dir(scratch)
        with prefect_server(scratch / "prefect") as server:
            env = {**os.environ, **server.env, "MLPLUG_LOAD_PLUGINS": "fraud"}
            for name in names:
                results.append(run_table(TABLES[name], data_dir, root / name, env, args))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    document = {
        "command": "benchmarks/fraud_public.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "trials": args.trials,
        "seed": args.seed,
        "resamples": args.resamples,
        "seconds": round(time.perf_counter() - started, 1),
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "results": results,
    }
    if args.update and args.out.is_file():
        document, results = merged(json.loads(args.out.read_text()), document)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(markdown(results, before))
    print(f"\nJSON: {args.out}")


if __name__ == "__main__":
    main()
