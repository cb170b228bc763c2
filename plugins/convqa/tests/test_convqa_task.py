from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import mlplug_convqa
import pytest
from mlplug_convqa import ConvQATask
from mlplug_convqa.model import TransformerParams

from mlplug.plugins import new_plugins
from mlplug.settings import Settings
from mlplug.task import SearchSpace, TaskType


def test_registers_through_the_hook_like_any_plugin(tmp_path) -> None:
    plugins = new_plugins(load_entry_points=False, settings=Settings(home=tmp_path))
    assert plugins.add(mlplug_convqa, "convqa") == "convqa"
    try:
        task = plugins.task("convqa")
        assert isinstance(task, ConvQATask) and isinstance(task, TaskType)
        assert plugins.tasks()["convqa"].plugin == "convqa"
        assert not plugins.skipped
    finally:
        plugins.remove("convqa")


def test_entry_point_and_api_version() -> None:
    (ep,) = [ep for ep in entry_points(group="mlplug") if ep.name == "convqa"]
    assert ep.value == "mlplug_convqa" and ep.dist is not None and ep.dist.name == "mlplug-convqa"
    assert mlplug_convqa.MLPLUG_API_VERSION == "1"


def test_every_abstract_method_is_implemented() -> None:
    assert not getattr(ConvQATask, "__abstractmethods__", set())
    assert ConvQATask.name == "convqa"


def test_importing_the_plugin_loads_no_torch_or_transformers() -> None:
    code = "import sys, mlplug_convqa; print(sorted({'torch', 'transformers', 'sklearn'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_search_space_uses_epochs_as_the_asha_resource() -> None:
    from ray.tune.search.sample import Domain

    space = ConvQATask().search_space()
    assert isinstance(space, SearchSpace)
    assert space.max_steps == space.params["epochs"] and space.grace_steps == 1
    for name in ("learning_rate", "max_length", "batch_size", "weight_decay", "warmup_ratio"):
        assert isinstance(space.params[name], Domain), name
    assert set(space.params) <= set(TransformerParams.model_fields)


def test_default_params_are_valid_minilm_params() -> None:
    params = ConvQATask().default_params()
    assert params["model_name_or_path"] == "minilm"
    TransformerParams(**params)  # raises on an unknown or invalid name


def test_the_demo_fine_tunes_minilm_from_its_package_with_the_mean_pooling_head() -> None:
    from mlplug_convqa.model import packaged_minilm_dir, resolve_model_source

    settings = ConvQATask().demo_settings()
    assert settings["trials"] == 0
    params = TransformerParams(**settings["params"])
    assert (params.model_name_or_path, params.pooling) == ("minilm", "mean")
    assert params.freeze_layers > 0  # their outputs are cached: the demo's time budget counts on it
    assert resolve_model_source(params.model_name_or_path) == str(packaged_minilm_dir())
    # A second MiniLM fit on all non-holdout rows would not fit in the demo's 10 minutes.
    from mlplug.parameters import TrainParameters

    assert TrainParameters(**settings).refit_on_all_rows is False


def test_create_model_rejects_a_schema_without_one_text_column(train_data) -> None:
    from mlplug.errors import DataError
    from mlplug.schema import Column, Role, Schema

    schema = Schema(features=(Column("amount", Role.NUMERIC),), target="label", classes=("a", "b"))
    with pytest.raises(DataError, match="exactly one text feature column"):
        ConvQATask().create_model(schema, {})
