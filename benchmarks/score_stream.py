"""Benchmark: streamed batch scoring (`mlplug predict`) against the raw model (issue 14).

    flock -x /tmp/mlplug-cpu.lock .venv/bin/python benchmarks/score_stream.py \\
        --rows 1000000 10000000 [--chunk-rows 250000] [--formats csv parquet]

Repeated runs, one size and format per lock hold, reusing the model and inputs:

    .venv/bin/python benchmarks/score_stream.py --work /tmp/ssb --rows 10000000 --prepare-only
    flock -x /tmp/mlplug-cpu.lock .venv/bin/python benchmarks/score_stream.py --work /tmp/ssb \\
        --rows 10000000 --formats parquet --kinds raw stream

The fraud CatBoost model (default parameters, 20,000 synthetic rows) is registered in a
temporary store; synthetic transaction files of each size are written (CSV, and Parquet
with 250k-row row groups). Each measurement runs in its own process, whose peak RSS
(sampled every 0.1 s) is reported:

- **raw**: the whole file parsed by pyarrow (typed, feature columns only: the fastest
  parse there is), validated into the in-memory frame, then the plugin's
  ``predict_proba`` (CatBoost's ``CatBoostClassifier.predict_proba``) on that frame. Each
  step is timed: "raw" rows/s count only ``predict_proba``, "raw + parse" add the pyarrow
  parse, "raw + parse + frame" also the conversion and validation into the model's frame.
  Then ``predict_proba`` once more on the same frame with its categorical columns as pandas
  ``category`` (converted untimed): "raw (category)", the fastest the model goes, for a
  model that declares ``accepts_category_dtype``; its probabilities are compared with the
  first call's (``category_equal``).
- **streamed**: ``mlplug.score_stream.score_file`` file -> file, the work of
  ``mlplug predict --no-profile`` after the model is loaded. "Scoring only" is the time
  the scoring thread spent validating, predicting and building the output of each chunk;
  "end to end" is the wall time from opening the input to the renamed output.
- **streamed + profile**: the same plus the drift profile of the default 100,000-row
  uniform sample (what ``mlplug predict`` does by default).

Prints JSON and a Markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.memory import PeakMemory
from mlplug.testing.servers import OFFLINE_ENV

GENERATE_ROWS = 1_000_000
KINDS = ("raw", "stream", "profile")


def _write_inputs(tmp: Path, rows: int, formats: list[str]) -> dict[str, Path]:
    """Synthetic transactions without the label, generated and written a million at a time."""
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq
    from mlplug_fraud.synthetic import generate_frame

    paths = {fmt: tmp / f"tx-{rows}.{fmt}" for fmt in formats}
    writers: dict[str, object] = {}
    for i, start in enumerate(range(0, rows, GENERATE_ROWS)):
        frame = generate_frame(min(GENERATE_ROWS, rows - start), seed=100 + i).drop(columns=["is_fraud"])
        table = pa.Table.from_pandas(frame, preserve_index=False)
        for fmt, path in paths.items():
            if fmt not in writers:
                writers[fmt] = (
                    pcsv.CSVWriter(str(path), table.schema)
                    if fmt == "csv"
                    else pq.ParquetWriter(str(path), table.schema)
                )
            if fmt == "csv":
                writers[fmt].write_table(table)  # type: ignore[attr-defined]
            else:
                writers[fmt].write_table(table, row_group_size=250_000)  # type: ignore[attr-defined]
    for writer in writers.values():
        writer.close()  # type: ignore[attr-defined]
    return paths


def _child(args: argparse.Namespace) -> None:
    """One measurement in this process; prints its JSON on the last line."""
    import psutil

    from mlplug.plugins import get_plugins
    from mlplug.registry import Registry
    from mlplug.runtime import open_store
    from mlplug.scoring import load_version

    task = get_plugins().task("fraud")
    registry = Registry(open_store(args.store))
    loaded = load_version(task, registry, "champion")
    result: dict[str, object] = {"baseline_rss_mib": psutil.Process().memory_info().rss / 2**20}
    if args.child == "raw":
        result.update(_raw(loaded, args.input))
    else:
        from mlplug.score_stream import score_file
        from mlplug.scoring import write_profile

        profile_rows = 100_000 if args.child == "profile" else 0
        started = time.perf_counter()
        stream = score_file(
            loaded, args.input, Path(args.out), chunk_rows=args.chunk_rows, profile_rows=profile_rows
        )
        scored = time.perf_counter()
        if stream.sample is not None:
            write_profile(task, loaded, stream.sample, registry.store)
        result.update(
            rows=stream.rows,
            chunks=stream.chunks,
            wall_s=time.perf_counter() - started,
            stream_s=scored - started,
            profile_s=time.perf_counter() - scored,
            steps_s=stream.seconds,
        )
    print(json.dumps(result))


def _raw(loaded, url: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """Parse the whole file (pyarrow, typed), validate it, then predict_proba on the frame."""
    import numpy as np
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    from mlplug.schema import Role, text_as_categories
    from mlplug.score_stream import arrow_types
    from mlplug.task import accepts_category_dtype

    schema = loaded.schema
    names = schema.feature_names
    types = {k: v for k, v in arrow_types(schema).items() if k in names}
    started = time.perf_counter()
    if url.endswith(".csv"):
        options = pcsv.ConvertOptions(include_columns=names, column_types=types, strings_can_be_null=True)
        table = pcsv.read_csv(url, convert_options=options)
    else:
        table = pq.read_table(url, columns=names, read_dictionary=["merchant_category"])
    parsed = time.perf_counter()
    frame = schema.validate(table.to_pandas(), url, require_target=False)[names]
    del table
    validated = time.perf_counter()
    proba = loaded.model.predict_proba(frame)
    predicted = time.perf_counter()
    result: dict[str, object] = {
        "rows": len(frame),
        "parse_s": parsed - started,
        "validate_s": validated - parsed,
        "predict_s": predicted - validated,
    }
    if accepts_category_dtype(loaded.model):
        coded = text_as_categories(frame, schema.columns_with(Role.CATEGORICAL))
        del frame
        started = time.perf_counter()
        proba_coded = loaded.model.predict_proba(coded)
        result["predict_category_s"] = time.perf_counter() - started
        result["category_equal"] = bool(np.array_equal(proba, proba_coded))
    return result


def _measure(kind: str, store: str, path: Path, out: Path, chunk_rows: int) -> dict[str, object]:
    cmd = [
        sys.executable, __file__, "--child", kind, "--store", store, "--input", str(path),
        "--out", str(out), "--chunk-rows", str(chunk_rows),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env={**os.environ})
    with PeakMemory(interval=0.1, pid=proc.pid) as peak:
        stdout, _ = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} on {path} failed ({proc.returncode})")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["peak_rss_mib"] = peak.peak_mib
    out.unlink(missing_ok=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--formats", nargs="+", default=["csv", "parquet"])
    parser.add_argument("--chunk-rows", type=int, default=250_000)
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument(
        "--work", help="folder kept between runs (model, inputs): repeat runs without regenerating"
    )
    parser.add_argument("--prepare-only", action="store_true", help="train and write the inputs only")
    parser.add_argument("--child", choices=KINDS)
    parser.add_argument("--store")
    parser.add_argument("--input")
    parser.add_argument("--out")
    args = parser.parse_args()
    os.environ.update(OFFLINE_ENV)
    if args.child:
        _child(args)
        return
    from benchmarks.serve_fraud import _train

    uptime_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    results = []
    with contextlib.ExitStack() as stack:
        if args.work:  # kept between runs: the model is trained and each input written once
            tmp = Path(args.work)
            tmp.mkdir(parents=True, exist_ok=True)
        else:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mlplug-stream-bench-")))
        home, store = tmp / "home", (tmp / "store").as_uri()
        os.environ.update({"MLPLUG_HOME": str(home), "MLPLUG_STORE": store, "MLPLUG_LOAD_PLUGINS": "fraud"})
        if not (tmp / "store").exists():
            _train(home, store, 20_000)
        for rows in args.rows:
            wanted = {fmt: tmp / f"tx-{rows}.{fmt}" for fmt in args.formats}
            missing = [fmt for fmt, path in wanted.items() if not path.exists()]
            inputs = {**wanted, **(_write_inputs(tmp, rows, missing) if missing else {})}
            if args.prepare_only:
                continue
            for fmt, path in inputs.items():
                entry: dict[str, object] = {"rows": rows, "format": fmt, "mb": path.stat().st_size / 1e6}
                for kind in args.kinds:
                    entry[kind] = _measure(kind, store, path, tmp / f"out.{fmt}", args.chunk_rows)
                    print(fmt, rows, kind, json.dumps(entry[kind]), file=sys.stderr, flush=True)
                results.append(entry)
                if not args.work:
                    path.unlink()
    if args.prepare_only:
        return
    uptime_after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(
        json.dumps(
            {"results": results, "uptime_before": uptime_before, "uptime_after": uptime_after}, indent=2
        )
    )
    print(_table(results))


def _table(results: list[dict]) -> str:  # type: ignore[type-arg]
    lines = [
        "| rows | input | raw predict_proba | raw predict_proba (category) | raw + parse "
        "| raw + parse + frame "
        "| streamed, scoring only (% of raw) | streamed, file -> file (% of raw + parse / + frame; % of raw; "
        "% of raw (category)) | streamed + profile | peak RSS streamed (+ profile) | peak RSS raw |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if "raw" not in r or "stream" not in r:  # a run of one kind: its JSON is the result
            continue
        raw, stream, prof = r["raw"], r["stream"], r.get("profile")
        n = r["rows"]
        raw_rate = n / raw["predict_s"]
        parse_rate = n / (raw["predict_s"] + raw["parse_s"])
        frame_rate = n / (raw["predict_s"] + raw["parse_s"] + raw["validate_s"])
        steps = stream["steps_s"]
        scoring = n / (steps["validate"] + steps["predict"] + steps["output"])
        e2e = n / stream["stream_s"]
        profiled = f"{n / prof['wall_s']:,.0f}" if prof else "not run"
        profile_rss = f"{prof['peak_rss_mib'] / 1024:.2f}" if prof else "-"
        coded = raw.get("predict_category_s")
        coded_rate = f"{n / coded:,.0f}" if coded else "-"
        of_coded = f"; {e2e * coded / n:.0%}" if coded else ""
        lines.append(
            f"| {n:,} | {r['format']} ({r['mb']:.0f} MB) | {raw_rate:,.0f} | {coded_rate} "
            f"| {parse_rate:,.0f} "
            f"| {frame_rate:,.0f} "
            f"| {scoring:,.0f} ({scoring / raw_rate:.0%}) "
            f"| {e2e:,.0f} ({e2e / parse_rate:.0%} / {e2e / frame_rate:.0%}; {e2e / raw_rate:.0%}{of_coded}) "
            f"| {profiled} "
            f"| {stream['peak_rss_mib'] / 1024:.2f} GiB ({profile_rss}) "
            f"| {raw['peak_rss_mib'] / 1024:.2f} GiB |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
