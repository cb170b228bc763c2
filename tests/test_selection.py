"""Choosing candidates by cross-validation on small data, refitting on every non-holdout
row, searching the baseline, calibrating, and serving the calibrated model (issue 11)."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

import mlplug
from flows.train import train
from mlplug import selection, training
from mlplug.blend import BlendModel
from mlplug.calibration import CalibratedModel, choose_calibration, fit_calibrator
from mlplug.dataset import Dataset
from mlplug.record import TrainingRecord
from mlplug.runtime import open_registry
from mlplug.scoring import load_version
from tests.linear_task import SCHEMA, STEPS, LinearModel, LinearTask
from tests.reporting.htmlcheck import parse


class FileLinear(LinearTask):
    """The linear task reading its rows from a CSV file."""

    def load(self, url, options):
        return Dataset(SCHEMA.validate(pd.read_csv(url), url), SCHEMA, url)


class Linear:
    @mlplug.hookimpl
    def register_tasks(self, register):
        register(LinearTask("linear"))
        register(LinearTask("brittle", fail_baseline=True))
        register(FileLinear("filelinear"))


@pytest.fixture
def linear(register_plugin, prefect_api, mlplug_store):
    register_plugin(Linear(), "linear")
    return open_registry()


def leaves(model) -> list[LinearModel]:
    """The task's own models inside whatever mlplug wrapped around them."""
    if isinstance(model, CalibratedModel):
        return leaves(model.inner)
    if isinstance(model, BlendModel):
        return [leaf for m in model.members for leaf in leaves(m)]
    return [model]


def assert_fitted_on(registry, version: int, rows: int):
    """Every model inside the stored version was fitted on ``rows`` rows, the main model with
    its reported steps scaled from the 1,280 training rows; returns the loaded version."""
    loaded = load_version(LinearTask("linear"), registry, version)
    fitted = leaves(loaded.model)
    assert fitted and all(m.rows == rows for m in fitted)
    main = [m for m in fitted if m.balanced]
    if main:
        assert main[0].params["steps"] == round(STEPS * rows / 1280)
    return loaded


def test_small_table_is_chosen_by_cv_refit_on_all_rows_calibrated_and_served_so(linear) -> None:
    summary = train(task="linear", trials=0, rows=2000, seed=2, refit_with_holdout=False)
    mv = linear.model("linear", summary["version"])
    record, notes = TrainingRecord.from_store(linear, mv)
    assert notes == []
    # Cross-validation on the small table, with a score per fold for every candidate.
    assert "5-fold stratified cross-validation on the 1,600 non-holdout rows" in record.selection_method
    assert {c.kind for c in record.candidates} == {"model", "baseline", "blend"}
    assert all(len(c.folds) == 5 and all(0 < f <= 1 for f in c.folds) for c in record.candidates)
    assert "cross-validation" in record.selection and "±" in record.selection
    # The baseline's space was searched, every configuration scored.
    baseline = next(c for c in record.candidates if c.kind == "baseline")
    assert [t["params"] for t in baseline.searched] == [{"C": 1.0}, {"C": 0.0001}]
    assert all(t["spread"] is not None for t in baseline.searched)
    # Refit: every registered model saw all 1,600 non-holdout rows, the main model with its
    # reported steps scaled from the 1,280 training rows to 1,600.
    assert record.refit_rows == mv.info["rows"]["train"] + mv.info["rows"]["valid"] == 1600
    loaded = assert_fitted_on(linear, summary["version"], 1600)
    # Class weights inflate the main model's probabilities; calibration fixes them, and the
    # stored version serves the calibrated ones (what predict, the server and monitoring load).
    assert record.calibration is not None and record.calibration.method in ("platt", "isotonic")
    assert isinstance(loaded.model, CalibratedModel)
    holdout = LinearTask().synthesize(3000, seed=99)
    served = loaded.model.predict_proba(holdout.X)[:, 1]
    raw = loaded.model.raw_proba(holdout.X)[:, 1]
    assert np.allclose(served, record.calibration.calibrator.apply(raw))
    rate = holdout.y.mean()
    assert abs(served.mean() - rate) < 0.03 < abs(raw.mean() - rate)
    # The report shows the fold scores and the calibration plot before and after.
    report = parse(linear.artifact("linear", summary["version"], "report.html").decode())
    assert report.problems() == []
    text = report.section_text["performance"]
    assert "How the candidates were chosen" in text and "fold 5" in text and "spread" in text
    assert "drawn before and after calibration" in text
    predictions = linear.artifact("linear", summary["version"], "predictions.parquet")
    columns = pd.read_parquet(io.BytesIO(predictions)).columns
    assert "uncalibrated:yes" in columns and "registered:yes" in columns


def test_after_the_comparison_the_registered_version_is_fitted_on_every_row(linear) -> None:
    summary = train(task="linear", trials=0, rows=2000, seed=2)
    mv = linear.model("linear", summary["version"])
    record, notes = TrainingRecord.from_store(linear, mv)
    assert notes == []
    assert record.holdout_refit and summary["holdout_refit"] is True
    assert record.refit_rows == summary["fit_rows"] == sum(mv.info["rows"].values()) == 2000
    assert_fitted_on(linear, summary["version"], 2000)
    # The holdout figures are the compared fit's, the same as the run without the final fit
    # (same seed, same split), and the report says which fit they belong to.
    compared = train(task="linear", trials=0, rows=2000, seed=2, refit_with_holdout=False, promote=False)
    assert summary["metrics"] == compared["metrics"] and summary["kind"] == compared["kind"]
    assert compared["holdout_refit"] is False and compared["fit_rows"] == 1600
    registered = [f"registered:{c}" for c in ("no", "yes")]
    first, second = (
        pd.read_parquet(io.BytesIO(linear.artifact("linear", v, "predictions.parquet")))
        for v in (summary["version"], compared["version"])
    )
    assert first[registered].equals(second[registered])
    # The champion was fitted on these very holdout rows, after its run compared it on them:
    # what stands in for it is the compared fit's figures, here equal to the new run's.
    record2, _ = TrainingRecord.from_store(linear, linear.model("linear", compared["version"]))
    assert record2.champion is not None and "stand in" in record2.champion.note
    assert record2.champion.metrics is not None
    assert record2.champion.metrics.values == summary["metrics"]
    assert "does not beat the champion's" in compared["reason"]
    text = parse(linear.artifact("linear", summary["version"], "report.html").decode()).section_text[
        "performance"
    ]
    assert "fitted once more on all 2,000 rows, the holdout included" in text
    assert (
        "The registered version was fitted on 1,600 rows"
        in (
            parse(linear.artifact("linear", compared["version"], "report.html").decode()).section_text[
                "performance"
            ]
        )
    )


def test_a_champion_is_compared_only_on_holdout_rows_it_was_not_fitted_on(linear, tmp_path) -> None:
    old = LinearTask().synthesize(2000, seed=2).frame
    grown = pd.concat([old, LinearTask().synthesize(1000, seed=7).frame], ignore_index=True)
    old.to_csv(tmp_path / "old.csv", index=False)
    grown.to_csv(tmp_path / "grown.csv", index=False)
    first = train(task="filelinear", trials=0, data=str(tmp_path / "old.csv"))
    assert first["fit_rows"] == 2000  # every row, the holdout included
    second = train(task="filelinear", trials=0, data=str(tmp_path / "grown.csv"))
    # The second run's holdout mixes old rows (the champion was fitted on them) and new ones.
    parts = training.split(FileLinear().load(str(tmp_path / "grown.csv"), {}), holdout=0.2, seed=0)
    new = (
        parts.holdout.frame.merge(old.drop_duplicates(), how="left", indicator=True)["_merge"] == "left_only"
    )
    assert 0 < new.sum() < len(parts.holdout)
    mv = linear.model("filelinear", second["version"])
    record, notes = TrainingRecord.from_store(linear, mv)
    champion = record.champion
    assert notes == [] and champion is not None and champion.version == first["version"]
    assert f"scored on the {new.sum():,} of the {len(parts.holdout):,} holdout rows it was not fitted on" in (
        champion.note
    )
    # Both are judged on those rows: the champion's figures and the new model's.
    assert champion.metrics is not None and champion.challenger is not None
    predictions = pd.read_parquet(
        io.BytesIO(linear.artifact("filelinear", mv.version, "predictions.parquet"))
    )
    task = FileLinear()
    rows = parts.holdout.subset(new.to_numpy())
    champ = task.evaluate(rows, predictions[["champion:no", "champion:yes"]].to_numpy()[new.to_numpy()])
    mine = task.evaluate(rows, predictions[["registered:no", "registered:yes"]].to_numpy()[new.to_numpy()])
    assert champion.metrics.score == pytest.approx(champ.score)
    assert champion.challenger.score == pytest.approx(mine.score)
    assert f"{champion.challenger.score:.4f}" in second["reason"] and f"{champ.score:.4f}" in second["reason"]
    text = parse(linear.artifact("filelinear", mv.version, "report.html").decode()).section_text[
        "performance"
    ]
    assert "holdout rows it was not fitted on (it was fitted on the others)" in text


def test_without_the_refit_the_fits_that_selection_validated_are_registered(linear) -> None:
    summary = train(task="linear", trials=0, rows=2000, seed=2, refit_on_all_rows=False)
    mv = linear.model("linear", summary["version"])
    record, _ = TrainingRecord.from_store(linear, mv)
    # Nothing saw the validation rows: the registered model is the one selection scored.
    assert record.refit_rows == mv.info["rows"]["train"] == 1280
    assert_fitted_on(linear, summary["version"], 1280)  # steps not scaled: no larger training set


def test_a_run_that_fails_while_selecting_registers_nothing(linear) -> None:
    with pytest.raises(RuntimeError, match="baseline exploded"):
        train(task="brittle", trials=0, rows=600)
    assert linear.versions("brittle") == []
    assert linear.alias("brittle") is None


def test_large_or_time_ordered_data_are_chosen_on_the_validation_part() -> None:
    task = LinearTask()
    big = training.split(task.synthesize(40_000, seed=1))
    plan = selection.plan_selection(big.train, big.valid, big.method)
    assert plan.method == "validation" and "validation part" in plan.description
    small = training.split(task.synthesize(2_000, seed=1))
    assert selection.plan_selection(small.train, small.valid, small.method).method == "cv"
    assert selection.plan_selection(small.train, small.valid, "time-ordered on 't'").method == "validation"
    # A model whose folds would take too long (a transformer) is chosen on validation.
    slow = selection.plan_selection(small.train, small.valid, small.method, fit_seconds=100.0)
    assert slow.method == "validation" and "would refit the model 5 times" in slow.description
    # Few positives in a large table: cross-validation all the same.
    negatives = big.valid.subset(np.flatnonzero(big.valid.y == 0)[:7000])
    positives = big.valid.subset(np.flatnonzero(big.valid.y == 1)[:20])
    few = selection.concat(negatives, positives)
    assert selection.plan_selection(big.train, few, "stratified").method == "cv"


def test_validation_mode_scores_every_candidate_and_refits_on_all_rows() -> None:
    task = LinearTask()
    parts = training.split(task.synthesize(40_000, seed=4))
    fitted = training.fit_candidate(task, "model", parts.train, parts.valid, {"steps": STEPS})
    chosen = selection.select(task, parts.train, parts.valid, parts.method, fitted.model, fitted.params)
    assert chosen.plan.method == "validation"
    assert all(len(c.folds) == 1 for c in chosen.candidates)
    refitted = selection.refit(task, parts.train, [parts.valid], chosen, fitted.model)
    rest = len(parts.train) + len(parts.valid)
    assert all(m.rows == rest for c in refitted for m in leaves(c.model))


def test_calibration_is_applied_only_when_it_helps() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0.01, 0.6, 20_000)
    y = (rng.random(p.size) < p).astype(int)  # already calibrated
    kept = choose_calibration(y, p, where="test predictions")
    assert kept.method == "none" and kept.calibrator is None and "would not help" in kept.reason
    inflated = np.clip(p * 1.6, 0, 1)  # the same ranking, probabilities too high
    fixed = choose_calibration(y, inflated, where="test predictions")
    assert fixed.method in ("platt", "isotonic") and fixed.calibrator is not None
    assert fixed.scores[fixed.method]["log_loss"] < fixed.scores["raw"]["log_loss"]
    # Calibration never changes the ranking (isotonic ties are broken by the raw score).
    calibrated = fixed.calibrator.apply(inflated)
    assert np.array_equal(np.argsort(calibrated, kind="stable"), np.argsort(inflated, kind="stable"))
    for method in ("platt", "isotonic"):
        other = fit_calibrator(method, y, inflated).apply(inflated)
        assert np.array_equal(np.argsort(other, kind="stable"), np.argsort(inflated, kind="stable"))
    assert choose_calibration(y[:30], p[:30], where="a few rows").method == "none"
    assert choose_calibration(y, p, where="x", classes=3).method == "none"


def test_stored_wrappers_round_trip_and_score_rows(tmp_path) -> None:
    from mlplug.calibration import Calibrator
    from mlplug.stored_model import load_model, save_model

    task = LinearTask()
    data = task.synthesize(1000, seed=5)
    a = task.create_model(data.schema, {"steps": 3})
    b = task.create_baseline(data.schema, {"C": 0.5})
    a.fit(data)
    b.fit(data)
    blend = BlendModel([a, b], [0.75, 0.25], ["model", "baseline"])
    model = CalibratedModel(blend, Calibrator("platt", {"coef": [0.8, -0.4]}))
    save_model(model, tmp_path)
    loaded = load_model(task, tmp_path)
    assert isinstance(loaded, CalibratedModel) and isinstance(loaded.inner, BlendModel)
    assert np.allclose(loaded.predict_proba(data.X), model.predict_proba(data.X))
    assert json.loads((tmp_path / "mlplug-model.json").read_text())["model"]["kind"] == "calibrated"


def _two(p: np.ndarray) -> np.ndarray:
    return np.column_stack([1 - p, p])


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1 - p))


def test_blends_are_geometric_so_a_members_class_weighting_does_not_change_the_ranking() -> None:
    from mlplug.blend import blend_proba

    rng = np.random.default_rng(0)
    a, b = rng.uniform(0.01, 0.3, 500), rng.uniform(0.01, 0.3, 500)
    blended = blend_proba([_two(a), _two(b)], [0.7, 0.3])
    assert np.allclose(blended.sum(axis=1), 1.0)
    assert np.allclose(_logit(blended[:, 1]), 0.7 * _logit(a) + 0.3 * _logit(b))
    # Class weights (or any prior shift) move b's log-odds by a constant: same blend ranking.
    weighted_b = 1 / (1 + np.exp(-(_logit(b) + 2.0)))
    shifted = blend_proba([_two(a), _two(weighted_b)], [0.7, 0.3])
    assert np.array_equal(np.argsort(shifted[:, 1]), np.argsort(blended[:, 1]))
    # An arithmetic mean of probabilities lets the inflated member take over the ranking.
    plain = blend_proba([_two(a), _two(b)], [0.7, 0.3], "arithmetic")
    inflated = blend_proba([_two(a), _two(weighted_b)], [0.7, 0.3], "arithmetic")
    assert not np.array_equal(np.argsort(plain[:, 1]), np.argsort(inflated[:, 1]))
    # More classes: the normalised geometric mean, rows summing to one.
    three = [rng.dirichlet(np.ones(3), 50) for _ in range(2)]
    mixed = blend_proba(three, [0.5, 0.5])
    expected = np.sqrt(three[0] * three[1])
    assert np.allclose(mixed, expected / expected.sum(axis=1, keepdims=True))


def test_a_blend_stored_before_geometric_blending_still_predicts_as_it_did(tmp_path) -> None:
    from mlplug.stored_model import load_model, save_model

    task = LinearTask()
    data = task.synthesize(1000, seed=6)
    a, b = task.create_model(data.schema, {"steps": 3}), task.create_baseline(data.schema, {"C": 0.5})
    a.fit(data)
    b.fit(data)
    old = BlendModel([a, b], [0.6, 0.4], ["model", "baseline"], combine="arithmetic")
    save_model(old, tmp_path)
    manifest = tmp_path / "mlplug-model.json"
    spec = json.loads(manifest.read_text())
    assert spec["model"].pop("combine") == "arithmetic"  # what an older mlplug wrote
    manifest.write_text(json.dumps(spec))
    loaded = load_model(task, tmp_path)
    assert loaded.combine == "arithmetic"
    expected = 0.6 * a.predict_proba(data.X) + 0.4 * b.predict_proba(data.X)
    assert np.allclose(loaded.predict_proba(data.X), expected)


def test_the_blend_weight_is_chosen_inside_and_wins_only_by_being_better() -> None:
    task = LinearTask()
    data = task.synthesize(2000, seed=7)
    folds = selection._folds(data, 5, 0)
    rng = np.random.default_rng(1)
    strong = _two(1 / (1 + np.exp(-(3.0 * data.y + rng.normal(0, 1.0, len(data))))))
    noise = _two(rng.uniform(0.05, 0.95, len(data)))
    model, useless = (
        selection.Scored(kind, {}, selection._fold_scores(task, data, folds, p), p, task.evaluate(data, p))
        for kind, p in (("model", strong), ("baseline", noise))
    )
    mixed = selection._blend(task, data, folds, model, useless)
    assert mixed.params["weight"] == 0.9  # as close to the model alone as the grid goes
    assert mixed.mean < model.mean  # so the model, not the blend, is chosen
    # Two members with independent errors: the blend averages them out, at a weight inside.
    noisy = [_two(1 / (1 + np.exp(-(2.0 * data.y + rng.normal(0, 1.5, len(data)))))) for _ in range(2)]
    model, baseline = (
        selection.Scored(kind, {}, selection._fold_scores(task, data, folds, p), p, task.evaluate(data, p))
        for kind, p in zip(("model", "baseline"), noisy, strict=True)
    )
    blend = selection._blend(task, data, folds, model, baseline)
    assert blend is not None and 0.0 < blend.params["weight"] < 1.0
    assert blend.mean > max(model.mean, baseline.mean)


def test_a_simpler_candidate_within_one_standard_error_of_the_best_wins() -> None:
    def scored(kind: str, folds: tuple[float, ...]) -> selection.Scored:
        return selection.Scored(kind, {}, folds, np.zeros((0, 2)), None)  # type: ignore[arg-type]

    noisy_lead = [
        scored("model", (0.30, 0.05, 0.32, 0.08, 0.31)),
        scored("baseline", (0.20, 0.15, 0.22, 0.16, 0.21)),
    ]
    winner, why = selection._simplest_within_noise(noisy_lead, higher=True)
    assert winner.kind == "baseline" and "within one standard error" in why and "simpler baseline" in why
    # The same mean lead, steady over the folds: evidence, so the model wins.
    steady_lead = [
        scored("model", (0.25, 0.20, 0.27, 0.21, 0.26)),
        scored("baseline", (0.20, 0.15, 0.22, 0.16, 0.21)),
    ]
    assert selection._simplest_within_noise(steady_lead, higher=True) == (steady_lead[0], "")
    # A blend within noise of the model gives way to the model, and lower-is-better metrics
    # compare the right way round.
    blend_first = [
        scored("blend", (0.31, 0.29, 0.33, 0.28, 0.30)),
        scored("model", (0.30, 0.30, 0.31, 0.29, 0.30)),
    ]
    assert selection._simplest_within_noise(blend_first, higher=True)[0].kind == "model"
    losses = [scored("model", (0.5, 0.7, 0.5, 0.7, 0.55)), scored("baseline", (0.6,) * 5)]
    assert selection._simplest_within_noise(losses, higher=False)[0].kind == "baseline"
    steady_losses = [scored("model", (0.5,) * 5), scored("baseline", (0.6,) * 5)]
    assert selection._simplest_within_noise(steady_losses, higher=False)[0].kind == "model"
    # An exact tie keeps the ranking's order: the model first, as always.
    tie = [scored("model", (0.3, 0.2, 0.3, 0.2, 0.3)), scored("baseline", (0.3, 0.2, 0.3, 0.2, 0.3))]
    assert selection._simplest_within_noise(tie, higher=True)[0].kind == "model"
    # One validation score has no spread: the best score wins.
    single = [scored("model", (0.3,)), scored("baseline", (0.29,))]
    assert selection._simplest_within_noise(single, higher=True)[0].kind == "model"
