"""Report contexts built in memory, without Prefect or a store, for fast section tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache

import numpy as np
import pandas as pd

from mlplug import training
from mlplug.dataset import Dataset
from mlplug.monitoring.drift import DriftResult, DriftThresholds, compare
from mlplug.monitoring.features import monitored_columns, monitoring_frame
from mlplug.monitoring.whylogs_compat import Profile
from mlplug.plugins import new_plugins
from mlplug.record import CandidateResult, ChampionComparison, TrainingRecord
from mlplug.reporting import ReportContext
from mlplug.reporting.doctor import PipCheck
from mlplug.schema import Column, Role, Schema
from mlplug.task import BusinessValue, Explanation, Metrics
from mlplug.tuning import Trial, TuneResult
from tests.toy_task import ToyTask

PIP_OK = PipCheck(True)  # pip check is tested on its own; sections need not run it each time


class NoisyToyModel:
    """A toy model whose probabilities follow the feature, so curves are not degenerate."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale

    def fit(self, train, valid=None, progress=None) -> None:
        pass

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        p = 1 / (1 + np.exp(-self.scale * X["x"].to_numpy()))
        return np.column_stack([1 - p, p])

    def save(self, path) -> None:
        (path / "scale.txt").write_text(repr(self.scale))


def toy_context(
    rows: int = 600,
    *,
    trials: int = 3,
    champion: bool = True,
    kind: str = "train",
    trigger: str | None = None,
) -> ReportContext:
    """A binary run of ToyTask with a real split, two candidates, a champion and trials.

    The plugin list is that of a builtin-only manager, so installed plugins stay out.
    """
    task = ToyTask("toy")
    data = task.synthesize(rows, seed=3)
    parts = training.split(data, seed=0)
    model = training.Candidate("model", NoisyToyModel(2.0), {"scale": 2.0}, _eval(task, parts.valid, 2.0))
    baseline = training.Candidate("baseline", NoisyToyModel(0.3), {}, _eval(task, parts.valid, 0.3))
    p_model = model.model.predict_proba(parts.holdout.X)
    p_base = baseline.model.predict_proba(parts.holdout.X)
    p_champ = NoisyToyModel(1.0).predict_proba(parts.holdout.X)
    holdout = _with_threshold(task.evaluate(parts.holdout, p_model), 0.4)
    champ = training.ChampionScore(None, task.evaluate(parts.holdout, p_champ), p_champ, "champion v1")
    tuned = (
        TuneResult(
            best_params={"scale": 2.0},
            best_score=0.81,
            trials=[
                Trial(f"t{i}", {"scale": s, "depth": i + 2}, score, 3, 1.5 + i, early)
                for i, (s, score, early) in enumerate(
                    [(0.5, 0.7, True), (2.0, 0.81, False), (1.0, 0.77, False), (3.0, 0.65, True)][:trials]
                )
            ],
            seconds=9.5,
        )
        if trials
        else None
    )
    other = task.evaluate(parts.holdout, p_base)
    record = TrainingRecord(
        task="toy",
        run_kind=kind,
        data_source=data.source,
        dataset_hash=data.content_hash(),
        split_method=parts.method,
        rows={"train": len(parts.train), "valid": len(parts.valid), "holdout": len(parts.holdout)},
        candidates=(
            CandidateResult("model", model.params, model.valid_metrics, holdout),
            CandidateResult("baseline", baseline.params, baseline.valid_metrics, other),
        ),
        registered_kind="model",
        selection="the main model won on validation",
        decision="accuracy beats the champion",
        business_value=BusinessValue(
            value=1234.5, unit="EUR", no_model_value=200.0, summary="saves money", details={"review_fee": 2.5}
        ),
        champion=ChampionComparison(
            1, champ.metrics, task.business_value(parts.holdout, p_champ, champ.metrics), "champion v1"
        )
        if champion
        else None,
        explanation=Explanation(
            kind="toy_gradient",
            global_importance={"x": 0.8, "bias": -0.1},
            per_row=[{"x": 0.5, "bias": -0.2}],
        ),
        tuning=tuned,
        trigger=trigger,
    )
    return ReportContext.for_training(
        task_type=task,
        record=record,
        dataset=data,
        predictions=training.predictions_table(
            parts.holdout,
            {"registered": p_model, "baseline": p_base, "champion": p_champ if champion else None},
        ),
        pip_check=PIP_OK,
        plugins=new_plugins(load_entry_points=False),
    )


def record_of(
    task: str, candidate_kind: str, holdout: Metrics, rows: dict[str, int], **fields: object
) -> TrainingRecord:
    """A record with one candidate, for contexts that only need a few of its parts."""
    return TrainingRecord(
        task=task,
        run_kind="train",
        data_source="hand-made",
        dataset_hash="0" * 64,
        split_method="stratified",
        rows=rows,
        candidates=(CandidateResult(candidate_kind, {}, holdout, holdout),),
        registered_kind=candidate_kind,
        selection="",
        decision="",
        **fields,  # type: ignore[arg-type]
    )


def _eval(task: ToyTask, data: Dataset, scale: float) -> Metrics:
    return task.evaluate(data, NoisyToyModel(scale).predict_proba(data.X))


def _with_threshold(m: Metrics, threshold: float) -> Metrics:
    return Metrics(m.values, m.primary, m.higher_is_better, threshold, m.details)


def text_dataset() -> Dataset:
    """Three classes, a text column (with markup that must be escaped), a category, a number."""
    schema = Schema(
        features=(
            Column("transcript", Role.TEXT),
            Column("channel", Role.CATEGORICAL),
            Column("minutes", Role.NUMERIC),
        ),
        target="outcome",
        classes=("solved", "escalated", "dropped"),
    )
    texts = [
        "thanks the issue is solved",
        "please escalate this to a manager now",
        "<script>alert(1)</script> hello?",
        "solved solved quickly",
        "customer hung up",
        "",
    ]
    frame = pd.DataFrame(
        {
            "transcript": texts * 5,
            "channel": ["chat", "phone", "chat", "mail", "phone", None] * 5,
            "minutes": [3.0, 12.5, 1.0, 2.0, 0.5, None] * 5,
            "outcome": ["solved", "escalated", "dropped", "solved", "dropped", "escalated"] * 5,
        }
    )
    return Dataset(schema.validate(frame, "hand-made"), schema, "hand-made")


# -- monitoring ----------------------------------------------------------------------------

#: Inputs of a monitored model: a long-tailed amount, a channel and a free-text note.
TRAFFIC_SCHEMA = Schema(
    features=(
        Column("amount", Role.NUMERIC),
        Column("channel", Role.CATEGORICAL),
        Column("note", Role.TEXT),
    ),
    target="fraud",
    classes=("no", "yes"),
)
WINDOW_END = datetime(2024, 5, 1, 12, tzinfo=UTC)
WINDOW = (WINDOW_END - timedelta(hours=24), WINDOW_END)


def traffic(rows: int, *, drift: float = 0.0, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Inputs and a model's probabilities. ``drift`` raises amounts, lengthens notes, moves
    the channel mix towards the store, adds a channel the reference never saw and leaves
    some amounts empty."""
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(3 + drift, 1, rows)
    amount[rng.random(rows) < 0.1 * drift] = np.nan
    mix = np.array([0.5, 0.3, 0.2, 0.0]) * (1 - drift) + np.array([0.2, 0.2, 0.5, 0.1]) * drift
    channel = rng.choice(["web", "app", "store", "kiosk"], rows, p=mix / mix.sum())
    words = rng.poisson(5 + 5 * drift, rows) + 1
    X = pd.DataFrame(  # noqa: N806
        {"amount": amount, "channel": channel, "note": [" ".join(["word"] * k) for k in words]}
    )
    p = 1 / (1 + np.exp(-(np.log(np.nan_to_num(amount, nan=20.0)) - 3)))
    return X, np.column_stack([1 - p, p])


def profile(rows: int, *, drift: float = 0.0, seed: int = 0) -> Profile:
    X, proba = traffic(rows, drift=drift, seed=seed)  # noqa: N806
    return Profile.of(monitoring_frame(ToyTask("toy"), TRAFFIC_SCHEMA, X, proba))


@cache
def reference_profile() -> Profile:
    return profile(2000, seed=1)


def drift_result(
    rows: int = 1000, *, drift: float = 0.0, seed: int = 7, version: int = 3, profiles: int = 4
) -> DriftResult:
    """A real comparison: profiles of generated traffic against a 2,000-row reference."""
    return compare(
        task="toy",
        version=version,
        columns=monitored_columns(ToyTask("toy"), TRAFFIC_SCHEMA),
        reference=reference_profile(),
        current=profile(rows, drift=drift, seed=seed),
        profiles=profiles,
        window=WINDOW,
        thresholds=DriftThresholds(),
    )
