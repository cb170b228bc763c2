"""Tuning starts from the task's start points (``SearchSpace.start_points``), with real Ray Tune."""

from __future__ import annotations

import pytest

from mlplug.task import SearchSpace
from mlplug.training import split
from mlplug.tuning import tune_task
from tests.linear_task import STEPS, LinearModel, LinearTask


class StartingTask(LinearTask):
    """A space with one sampled parameter and a start point that sampling would not draw,
    so a test can tell the start point's trial from the sampled one."""

    def search_space(self) -> SearchSpace:
        from ray import tune

        return SearchSpace(
            params={"steps": STEPS, "C": tune.loguniform(0.001, 100.0)},
            start_points=[{"C": 42.0}],
        )

    def create_model(self, schema, params) -> LinearModel:
        allowed = {"steps", "C", "seed"}
        assert set(params) <= allowed, params
        return super().create_model(schema, params)


def test_the_first_trial_is_the_start_point_and_fixed_parameters_still_win(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MLPLUG_HOME", str(tmp_path / "home"))
    task = StartingTask()
    parts = split(task.synthesize(600, seed=3))
    result = tune_task(
        task, parts.train, parts.valid, trials=2, workdir=tmp_path / "tune", seed=0, cpus=1,
        fixed={"steps": 7},
    )  # fmt: skip
    assert len(result.trials) == 2
    started = [t.params for t in result.trials if t.params["C"] == 42.0]
    assert len(started) == 1 and started[0]["steps"] == 7
    sampled = [t.params for t in result.trials if t.params["C"] != 42.0]
    assert len(sampled) == 1 and sampled[0]["steps"] == 7


def test_a_start_point_must_name_parameters_of_the_space() -> None:
    with pytest.raises(ValueError, match=r"start point names \['depht'\].*known: \['depth'\]"):
        SearchSpace(params={"depth": 6}, start_points=[{"depht": 4}])
