"""Benchmark: tuned CatBoost vs the scikit-learn baseline on public tabular data sets that a
package ships (no download at run time beyond the package index):

- ISLP ``Default`` (10,000 credit-card customers, 3.3 % default; columns student, balance,
  income) — the closest public analogue of a rare-event payments problem;
- ISLP ``Caravan`` (5,822 insurance customers, 6 % buy; 85 socio-demographic columns,
  ``MOSTYPE`` a categorical code).

    .venv/bin/python benchmarks/fraud_public.py [--trials 8]

Installs the ``islp`` wheel with --no-deps into a scratch directory (benchmark-only) and
runs both through the real train flow (`trials` Ray Tune trials, stratified split). Both
candidates are scored on the same holdout; the table reports holdout PR-AUC.
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

from mlplug.testing.servers import OFFLINE_ENV, prefect_server

DATASETS = {
    "Default": {"target": "default"},
    "Caravan": {"target": "Purchase", "categorical": "MOSTYPE,MOSHOOFD"},
}


def islp_data(scratch: Path) -> Path:
    target = scratch / "islp"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), "islp==0.6.0"],
        check=True,
    )
    return target / "ISLP" / "data"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=8)
    args = parser.parse_args()
    os.environ.update(OFFLINE_ENV)
    results = {}
    with tempfile.TemporaryDirectory() as tmp, prefect_server(Path(tmp) / "prefect") as server:
        os.environ.update(server.env)
        os.environ["MLPLUG_HOME"] = str(Path(tmp) / "home")
        os.environ["MLPLUG_STORE"] = (Path(tmp) / "store").as_uri()
        os.environ["MLPLUG_LOAD_PLUGINS"] = "fraud"
        data = islp_data(Path(tmp))
        from flows.train import train
        from mlplug.runtime import open_registry

        for name, options in DATASETS.items():
            summary = train(
                task="fraud", data=str(data / f"{name}.csv"), options=options, trials=args.trials, cpus=2
            )
            by_kind = summary["candidates"]
            results[name] = {
                "rows": sum(open_registry().model("fraud", summary["version"]).info["rows"].values()),
                "catboost_pr_auc": round(by_kind["model"]["pr_auc"], 4),
                "baseline_pr_auc": round(by_kind["baseline"]["pr_auc"], 4),
                "catboost_roc_auc": round(by_kind["model"]["roc_auc"], 4),
                "baseline_roc_auc": round(by_kind["baseline"]["roc_auc"], 4),
                "registered": summary["kind"],
                "selection": summary["selection"],
            }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
