"""Cost of monitoring a day of traffic: write a server's profiles, then check them for drift.

A fraud champion's day at one flush a minute is 1,440 profiles. This writes them the way a
server does (``ProfileWriter``: rows buffered, one whylogs profile per flush, create-only into
a file:// store), then times the monitor's steps: listing the window, reading and merging the
profiles, scoring drift per column, rendering the drift report.

    .venv/bin/python benchmarks/monitor_day.py [--profiles 1440] [--rows-per-profile 100]

No target is set by an issue; the figures tell an operator what an hourly monitor run over a
24-hour window costs.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from mlplug.monitoring.check import check, stored_traffic
from mlplug.monitoring.drift import DriftThresholds
from mlplug.monitoring.features import monitoring_frame
from mlplug.monitoring.profiles import ProfileWriter
from mlplug.monitoring.whylogs_compat import Profile, preload
from mlplug.plugins import get_plugins
from mlplug.registry import ModelVersion, Registry
from mlplug.reporting import ReportContext, build_report
from mlplug.storage.local import LocalStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=1440)
    parser.add_argument("--rows-per-profile", type=int, default=100)
    parser.add_argument("--drift", type=float, default=1.0)
    args = parser.parse_args()

    task = get_plugins().task("fraud")
    reference = task.synthesize(20_000, seed=1)
    schema = reference.schema
    rng = np.random.default_rng(0)

    def proba(n: int) -> np.ndarray:
        p = rng.beta(1, 30, n)
        return np.c_[1 - p, p]

    preload()
    with tempfile.TemporaryDirectory() as tmp:
        registry = Registry(LocalStore(Path(tmp)))
        version = ModelVersion(
            task="fraud", version=1, created_at=datetime.now(UTC).isoformat(), kind="model", params={},
            metrics={"pr_auc": 0.5}, primary_metric="pr_auc", higher_is_better=True, threshold=0.3,
            dataset_hash="bench", schema=schema.to_dict(), files=[],
        )  # fmt: skip
        ref_frame = monitoring_frame(task, schema, reference.X, proba(len(reference)), threshold=0.3)
        ref_profile = Profile.of(ref_frame)

        traffic = task.synthesize(args.profiles * args.rows_per_profile, seed=2, drift=args.drift)
        rows = traffic.X.values.tolist()
        p = proba(len(rows))
        writer = ProfileWriter(registry.store, task, schema, 0.3, flush_seconds=1e9, max_rows=10**9)
        started = time.perf_counter()
        add_seconds = 0.0
        for i in range(args.profiles):
            chunk = slice(i * args.rows_per_profile, (i + 1) * args.rows_per_profile)
            t = time.perf_counter()
            for row, pr in zip(rows[chunk], p[chunk], strict=True):  # one request per row
                label = "fraud" if pr[1] >= 0.3 else "legit"
                writer.add(1, schema.feature_names, [row], pr[None, :], [label])
            add_seconds += time.perf_counter() - t
            writer.flush()
        write_seconds = time.perf_counter() - started
        size = sum(f.stat().st_size for f in Path(tmp).rglob("*.profile"))

        t = time.perf_counter()
        window = stored_traffic(task, registry, version, hours=24)
        merge_seconds = time.perf_counter() - t
        t = time.perf_counter()
        result = check(task, version, ref_profile, window, DriftThresholds())
        score_seconds = time.perf_counter() - t
        t = time.perf_counter()
        report = build_report(ReportContext.for_monitoring(task_type=task, version=version, drift=result))
        report_seconds = time.perf_counter() - t

    n = args.profiles * args.rows_per_profile
    print(f"profiles written: {args.profiles} x {args.rows_per_profile} rows = {n:,} rows")
    print(f"  on disk: {size / 1e6:.1f} MB")
    print(f"  observer add(): {add_seconds / n * 1e6:.1f} us per one-row request")
    print(f"  flushes: {(write_seconds - add_seconds) / args.profiles * 1e3:.0f} ms per profile")
    print(f"monitor: list + read + merge {window.profiles} profiles: {merge_seconds:.1f} s")
    print(f"  drift scores for {len(result.columns)} columns: {score_seconds * 1e3:.0f} ms")
    print(f"  drift report: {report_seconds:.1f} s, {len(report.html) / 1e6:.2f} MB")
    print(f"  merged rows {window.profile.rows():,}; decision: {result.decision}")


if __name__ == "__main__":
    main()
