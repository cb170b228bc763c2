"""``mlplug models``, ``datasets``, ``predict`` and option parsing, in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import mlplug
from mlplug.cli import app
from mlplug.cli.options import parse_params
from mlplug.errors import MlplugError
from mlplug.registry import Registry
from mlplug.task import Metrics
from tests.toy_task import ConstantModel, ToyTask

runner = CliRunner()


class Toys:
    @mlplug.hookimpl
    def register_tasks(self, register):
        register(ToyTask("toy"))


@pytest.fixture
def registry(register_plugin, mlplug_store, tmp_path) -> Registry:
    register_plugin(Toys(), "toys")
    reg = Registry(mlplug_store)
    task = ToyTask("toy")
    data = task.synthesize(50)
    ref = reg.put_dataset("toy", data)
    for rate, score in ((0.2, 0.61), (0.7, 0.74)):
        model_dir = tmp_path / f"m{rate}"
        model_dir.mkdir()
        ConstantModel(rate).save(model_dir)
        reg.register_model(
            "toy",
            model_dir,
            kind="model",
            params={"rate": rate},
            metrics=Metrics({"accuracy": score}, "accuracy"),
            dataset_hash=ref.hash,
            schema=data.schema,
        )
    return reg


def test_models_list_show_promote(registry: Registry) -> None:
    out = runner.invoke(app, ["models", "list", "toy"])
    assert out.exit_code == 0, out.output
    lines = out.output.strip().splitlines()
    assert len(lines) == 3 and "champion" not in out.output
    assert "0.6100" in lines[1] and "0.7400" in lines[2]

    out = runner.invoke(app, ["models", "promote", "toy", "2", "--reason", "better"])
    assert out.exit_code == 0, out.output
    assert "champion -> version 2" in out.output
    assert registry.alias("toy").reason == "better"
    assert "<- champion" in runner.invoke(app, ["models", "list", "toy"]).output.splitlines()[2]

    out = runner.invoke(app, ["models", "promote", "toy", "1"])
    assert "(was 2)" in out.output

    shown = json.loads(runner.invoke(app, ["models", "show", "toy", "champion"]).output)
    assert shown["version"] == 1 and shown["params"] == {"rate": 0.2}
    latest = json.loads(runner.invoke(app, ["models", "show", "toy", "latest"]).output)
    assert latest["version"] == 2


def test_models_list_columns_line_up(registry: Registry) -> None:
    runner.invoke(app, ["models", "promote", "toy", "1"])
    lines = runner.invoke(app, ["models", "list", "toy"]).output.rstrip("\n").splitlines()
    header, rows = lines[0], lines[1:]
    created = [mv.created_at for mv in registry.versions("toy")]
    for row, stamp in zip(rows, created, strict=True):
        # Each value starts where its heading does: the timestamp under "created", the kind
        # under "kind", the metric under "metric".
        assert row.index(stamp) == header.index("created"), (header, row)
        assert row.index("model") == header.index("kind"), (header, row)
        assert row.index("accuracy") == header.index("metric"), (header, row)
    assert rows[0].endswith("<- champion") and not rows[1].endswith(" ")


def test_promoting_a_missing_version_fails_and_keeps_alias(registry: Registry) -> None:
    runner.invoke(app, ["models", "promote", "toy", "1"])
    out = runner.invoke(app, ["models", "promote", "toy", "9"])
    assert out.exit_code != 0
    assert "no model version 9" in str(out.exception) and "versions: [1, 2]" in str(out.exception)
    assert registry.alias("toy").version == 1


def test_datasets_list(registry: Registry) -> None:
    out = runner.invoke(app, ["datasets", "list", "toy"])
    assert out.exit_code == 0 and "50 rows" in out.output


def test_predict_writes_one_row_per_input(registry: Registry, tmp_path: Path) -> None:
    runner.invoke(app, ["models", "promote", "toy", "2"])
    src = tmp_path / "in.csv"
    pd.DataFrame({"x": [0.1, -2.0, 3.0]}).to_csv(src, index=False)
    out_file = tmp_path / "out" / "scores.parquet"
    out = runner.invoke(app, ["predict", "toy", "--data", str(src), "--out", str(out_file)])
    assert out.exit_code == 0, out.output
    scores = pd.read_parquet(out_file)
    assert list(scores.columns) == ["probability", "prediction"]
    assert scores["probability"].tolist() == [0.7, 0.7, 0.7]
    assert scores["prediction"].tolist() == ["yes", "yes", "yes"]


def _scored_input(tmp_path: Path, values: list[float]) -> Path:
    src = tmp_path / "in.csv"
    pd.DataFrame({"x": values}).to_csv(src, index=False)
    return src


def test_predict_profiles_the_scored_rows_for_the_version_used(registry: Registry, tmp_path: Path) -> None:
    from mlplug.monitoring.features import PREDICTION, SCORE
    from mlplug.monitoring.profiles import list_profiles, read_merged

    src = _scored_input(tmp_path, [0.1, -2.0, 3.0, 4.5])
    out = runner.invoke(
        app, ["predict", "toy", "--data", str(src), "--out", str(tmp_path / "o.csv"), "--model", "2"]
    )
    assert out.exit_code == 0, out.output
    refs = list_profiles(registry.store, "toy", 2)
    assert len(refs) == 1 and list_profiles(registry.store, "toy", 1) == []
    assert f"profile: {registry.store.uri(refs[0].key)}" in out.output
    assert "-predict_" in refs[0].key
    profile = read_merged(registry.store, [refs[0].key])
    assert profile is not None and profile.rows() == 4
    assert {"x", PREDICTION, SCORE} <= set(profile.columns)
    labels = profile.sketch(PREDICTION, "categorical")
    assert labels is not None and labels.counts == {"yes": 4.0}  # type: ignore[union-attr]


@pytest.mark.parametrize("how", ["--no-profile", "MLPLUG_MONITORING=false"])
def test_predict_without_a_profile(registry: Registry, tmp_path: Path, monkeypatch, how: str) -> None:
    args = ["predict", "toy", "--data", str(_scored_input(tmp_path, [1.0])), "--out", str(tmp_path / "o.csv")]
    if how.startswith("--"):
        args.append(how)
    else:
        monkeypatch.setenv(*how.split("="))
    out = runner.invoke(app, [*args, "--model", "1"])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "o.csv").exists() and "profile:" not in out.output
    assert list(registry.store.list("toy/profiles/")) == []


def test_a_profile_that_cannot_be_written_warns_and_keeps_the_scores(
    registry: Registry, tmp_path: Path, monkeypatch
) -> None:
    from mlplug.storage.local import LocalStore

    real_put = LocalStore.put

    def put(self, key, data, **kwargs):  # type: ignore[no-untyped-def]
        if "/profiles/" in key:
            raise OSError("store refused the write")
        return real_put(self, key, data, **kwargs)

    monkeypatch.setattr(LocalStore, "put", put)
    src = _scored_input(tmp_path, [1.0, 2.0])
    out = runner.invoke(
        app, ["predict", "toy", "--data", str(src), "--out", str(tmp_path / "o.csv"), "--model", "1"]
    )
    assert out.exit_code == 0, out.output
    assert "warning: no profile of the scored rows written: store refused the write" in out.output
    assert pd.read_csv(tmp_path / "o.csv")["prediction"].tolist() == ["no", "no"]


def test_predict_names_the_missing_column(registry: Registry, tmp_path: Path) -> None:
    runner.invoke(app, ["models", "promote", "toy", "2"])
    src = tmp_path / "in.csv"
    pd.DataFrame({"z": [1.0]}).to_csv(src, index=False)
    out = runner.invoke(app, ["predict", "toy", "--data", str(src), "--out", str(tmp_path / "o.csv")])
    assert out.exit_code != 0
    assert "missing column(s) ['x']" in str(out.exception) and "in.csv" in str(out.exception)
    assert not (tmp_path / "o.csv").exists()


def test_predict_a_bad_row_in_a_late_chunk_names_it_and_writes_nothing(
    registry: Registry, tmp_path: Path
) -> None:
    values: list[object] = [float(i) for i in range(3_000)]
    values[2_500] = "oops"
    src = tmp_path / "in.csv"
    pd.DataFrame({"x": values}).to_csv(src, index=False)
    out_file = tmp_path / "o.csv"
    args = [
        "predict",
        "toy",
        "--data",
        str(src),
        "--out",
        str(out_file),
        "--model",
        "1",
        "--chunk-rows",
        "100",
    ]
    out = runner.invoke(app, args)
    assert out.exit_code != 0
    assert str(out.exception) == f"{src}: column 'x' expects numbers, found 'oops' at row 2500"
    assert not list(tmp_path.glob("o.csv*"))
    assert list(registry.store.list("toy/profiles/")) == []


def test_predict_profiles_a_uniform_sample_of_a_large_file(registry: Registry, tmp_path: Path) -> None:
    from mlplug.monitoring.profiles import list_profiles, read_merged

    src = _scored_input(tmp_path, [float(i) for i in range(5_000)])
    args = ["predict", "toy", "--data", str(src), "--out", str(tmp_path / "o.csv"), "--model", "1"]
    out = runner.invoke(app, [*args, "--chunk-rows", "300", "--profile-rows", "1000"])
    assert out.exit_code == 0, out.output
    assert "scored 5000 rows" in out.output and "(1000 of 5000 rows)" in out.output
    assert len(pd.read_csv(tmp_path / "o.csv")) == 5_000
    profile = read_merged(registry.store, [list_profiles(registry.store, "toy", 1)[0].key])
    assert profile is not None and profile.rows() == 1_000 and profile.seen_rows() == 5_000


def test_train_help_lists_the_task_options_with_their_descriptions(registry: Registry) -> None:
    out = runner.invoke(app, ["train", "toy", "--help"], env={"TERMINAL_WIDTH": "240", "COLUMNS": "240"})
    assert out.exit_code == 0, out.output
    text = " ".join(out.output.split())
    for option in ("--data", "--trials", "--rows", "--min-delta", "--store", "--param", "--json"):
        assert option in text
    # ToyTask's loader options model: its fields and their descriptions.
    assert "--label" in text and "(loader option, with --data)" in text
    assert "Ray Tune trials; 0 fits the task type's default parameters." in text
    assert "toy" in runner.invoke(app, ["train", "--help"]).output


def test_a_misspelt_or_misplaced_option_fails_before_anything_runs(registry: Registry) -> None:
    misspelt = runner.invoke(app, ["train", "toy", "--labl", "y", "--trials", "0"])
    assert misspelt.exit_code == 2 and "No such option: --labl" in misspelt.output
    assert "--label" in misspelt.output  # the closest real option is suggested
    unknown = runner.invoke(app, ["train", "tyo"])
    assert unknown.exit_code == 2 and "unknown task type 'tyo'" in unknown.output
    assert "Did you mean 'toy'" in " ".join(unknown.output.split())
    without_data = runner.invoke(app, ["train", "toy", "--label", "y", "--trials", "0"])
    assert isinstance(without_data.exception, MlplugError)
    assert "--label: loader options apply to --data" in str(without_data.exception)
    bad_value = runner.invoke(app, ["train", "toy", "--trials", "-1"])
    assert "--trials: Input should be greater than or equal to 0" in str(bad_value.exception)
    assert registry.versions("toy")[-1].version == 2  # nothing trained


def test_param_parsing() -> None:
    assert parse_params(["depth=4", "name=tiny", "lr=0.1", "flag=true"]) == {
        "depth": 4,
        "name": "tiny",
        "lr": 0.1,
        "flag": True,
    }
    with pytest.raises(MlplugError, match="expected NAME=VALUE"):
        parse_params(["depth"])
