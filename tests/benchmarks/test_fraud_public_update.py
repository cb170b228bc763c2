"""``benchmarks/fraud_public.py --update``: a run split over several lock holds adds up to one."""

from __future__ import annotations

import pytest

from benchmarks.fraud_public import merged


def _run(tables: list[str], seed: int = 0, seconds: float = 10.0) -> dict:
    return {
        "command": f"benchmarks/fraud_public.py --tables {','.join(tables)}",
        "trials": 4,
        "seed": seed,
        "resamples": 2000,
        "seconds": seconds,
        "results": [{"table": t, "mark": f"{t}@{seconds}"} for t in tables],
    }


def test_update_adds_and_replaces_tables_in_the_benchmarks_order() -> None:
    earlier = _run(["Wage", "Default"], seconds=10.0)
    document, results = merged(earlier, _run(["Caravan", "Wage"], seconds=5.0))
    # Default, Caravan, ..., Wage: the order of public_tables.TABLES, Wage from the new run.
    assert [r["table"] for r in results] == ["Default", "Caravan", "Wage"]
    assert {r["table"]: r["mark"] for r in results}["Wage"] == "Wage@5.0"
    assert document["results"] == results and document["seconds"] == 15.0
    assert len(document["commands"]) == 2


def test_update_refuses_runs_that_do_not_compare() -> None:
    with pytest.raises(SystemExit, match="seed=0, this run 1"):
        merged(_run(["Default"], seed=0), _run(["Wage"], seed=1))
