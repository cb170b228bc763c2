"""The registry on ``file://`` and on moto's S3 server: datasets, versions, aliases, races, crashes."""

from __future__ import annotations

import dataclasses
import json
import logging
import platform
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import mlplug
from mlplug.dataset import Dataset
from mlplug.errors import AliasConflictError, NotFoundError
from mlplug.io import read_table
from mlplug.registry import AliasRecord, ModelVersion, Registry
from mlplug.schema import Column, Role, Schema
from mlplug.storage import Store
from mlplug.task import Metrics
from mlplug.testing.store_contract import in_threads
from tests.concurrency import OPEN_STORE, run_together

TASK = "demo"
SCHEMA = Schema(
    features=(Column("amount", Role.NUMERIC), Column("kind", Role.CATEGORICAL)),
    target="label",
    classes=("no", "yes"),
)


def raw_frame(rows: int = 12, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "amount": rng.normal(100, 20, rows).round(2),
            "kind": rng.choice(["card", "wire", "cash"], rows),
            "label": rng.choice(["no", "yes"], rows),
        }
    )


def make_dataset(raw: pd.DataFrame, source: str = "test") -> Dataset:
    return Dataset(SCHEMA.validate(raw, source), SCHEMA, source)


def model_dir(root: Path, tag: str) -> Path:
    path = root / f"model-{tag}"
    (path / "sub").mkdir(parents=True)
    (path / "weights.bin").write_bytes(f"weights of {tag}".encode() * 100)
    (path / "sub" / "config.json").write_text(json.dumps({"tag": tag}))
    return path


def register(
    registry: Registry, root: Path, tag: str = "m", score: float = 0.8, registration: str = ""
) -> ModelVersion:
    return registry.register_model(
        TASK,
        model_dir(root, tag),
        kind="toy",
        params={"tag": tag, "C": 1.5},
        metrics=Metrics({"auc": score, "accuracy": 0.7}, primary="auc"),
        dataset_hash="ab" * 32,
        schema=SCHEMA,
        artifacts={"report.html": b"<html>report</html>"},
        info={"rows": 12},
        registration=registration,
    )


@pytest.fixture
def fast_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stub the environment snapshot (tested on its own): listing every installed package
    costs a fifth of a second per registration."""
    monkeypatch.setattr("mlplug.registry.snapshot", lambda: {"python": platform.python_version()})


@pytest.fixture
def registry(any_store: Store, fast_snapshot: None) -> Registry:
    return Registry(any_store)


# -- datasets ------------------------------------------------------------------------------


def test_put_dataset_is_content_addressed(registry: Registry) -> None:
    first = registry.put_dataset(TASK, make_dataset(raw_frame(seed=1), "a.csv"))
    again = registry.put_dataset(TASK, make_dataset(raw_frame(seed=1), "b.parquet"))
    other = registry.put_dataset(TASK, make_dataset(raw_frame(seed=2)))
    assert again.hash == first.hash and len(first.hash) == 64
    assert again.source == "a.csv"  # the stored manifest, not a second version
    assert other.hash != first.hash
    assert sorted(ref.hash for ref in registry.datasets(TASK)) == sorted([first.hash, other.hash])
    assert sorted(registry.store.list(f"{TASK}/datasets/{first.hash}")) == [
        f"{TASK}/datasets/{first.hash}/data.parquet",
        f"{TASK}/datasets/{first.hash}/manifest.json",
    ]
    assert registry.dataset(TASK, first.hash) == first
    assert first.rows == 12


def test_one_value_changed_is_a_new_dataset() -> None:
    raw = raw_frame(seed=3)
    changed = raw.copy()
    changed.loc[5, "amount"] += 0.01
    assert make_dataset(raw).content_hash() != make_dataset(changed).content_hash()


def test_csv_and_parquet_of_the_same_frame_hash_the_same(registry: Registry, tmp_path: Path) -> None:
    raw = raw_frame(seed=4)
    raw.to_csv(tmp_path / "data.csv", index=False)
    raw.to_parquet(tmp_path / "data.parquet", index=False)
    from_csv = make_dataset(read_table(str(tmp_path / "data.csv")), "data.csv")
    from_parquet = make_dataset(read_table((tmp_path / "data.parquet").as_uri()), "data.parquet")
    assert from_csv.content_hash() == from_parquet.content_hash() == make_dataset(raw).content_hash()
    assert registry.put_dataset(TASK, from_csv).hash == registry.put_dataset(TASK, from_parquet).hash
    assert len(registry.datasets(TASK)) == 1


def test_load_dataset_round_trip(registry: Registry) -> None:
    original = make_dataset(raw_frame(seed=5))
    ref = registry.put_dataset(TASK, original)
    loaded = registry.load_dataset(TASK, ref.hash)
    pd.testing.assert_frame_equal(loaded.frame, original.frame)
    assert loaded.schema == SCHEMA
    assert loaded.content_hash() == ref.hash


def test_concurrent_puts_of_the_same_data_make_one_version(registry: Registry) -> None:
    results = in_threads(4, lambda i: registry.put_dataset(TASK, make_dataset(raw_frame(seed=6))))
    assert all(not isinstance(r, Exception) for r in results), results
    assert len({r.hash for r in results}) == 1
    assert len(registry.datasets(TASK)) == 1


def test_unknown_dataset_is_not_found(registry: Registry) -> None:
    with pytest.raises(NotFoundError, match=r"manifest\.json"):
        registry.load_dataset(TASK, "0" * 64)


# -- model versions ----------------------------------------------------------------------


def test_register_model_stores_an_immutable_version_with_metadata(registry: Registry, tmp_path: Path) -> None:
    mv = register(registry, tmp_path, "first", score=0.81)
    assert mv.version == 1
    assert mv.params == {"tag": "first", "C": 1.5}
    assert mv.metrics == {"auc": 0.81, "accuracy": 0.7}
    assert (mv.primary_metric, mv.higher_is_better, mv.score) == ("auc", True, 0.81)
    assert mv.dataset_hash == "ab" * 32
    assert Schema.from_dict(mv.schema) == SCHEMA
    assert mv.files == ["model/sub/config.json", "model/weights.bin", "env.json", "report.html"]
    assert mv.as_metrics().beats(Metrics({"auc": 0.8}, primary="auc"))
    assert registry.model(TASK, 1) == mv
    assert registry.model(TASK, "1") == mv
    keys = set(registry.store.list(f"{TASK}/models/1"))
    assert {f"{TASK}/models/1/{name}" for name in [*mv.files, "metadata.json"]} <= keys
    assert registry.artifact(TASK, 1, "report.html") == b"<html>report</html>"


def test_env_snapshot_names_python_and_packages(any_store: Store, tmp_path: Path) -> None:
    registry = Registry(any_store)  # the real snapshot
    mv = register(registry, tmp_path)
    env = json.loads(registry.artifact(TASK, mv.version, "env.json"))
    assert env["python"] == platform.python_version()
    assert env["packages"]["pandas"] == pd.__version__
    assert env["packages"]["mlplug"] == mlplug.__version__
    assert env["cpu_count"] >= 1


def test_versions_increase_and_latest_is_the_newest(registry: Registry, tmp_path: Path) -> None:
    assert registry.versions(TASK) == []
    created = [register(registry, tmp_path, f"m{i}", score=0.5 + i / 10) for i in range(3)]
    assert [mv.version for mv in created] == [1, 2, 3]
    assert registry.versions(TASK) == created
    assert registry.model(TASK, "latest") == created[-1]
    assert registry.versions("other-task") == []


def test_latest_and_champion_of_an_empty_task_are_not_found(registry: Registry) -> None:
    with pytest.raises(NotFoundError, match="no model versions"):
        registry.model(TASK, "latest")
    with pytest.raises(NotFoundError, match="no alias 'champion'"):
        registry.model(TASK, "champion")


def test_unknown_version_error_lists_known_versions(registry: Registry, tmp_path: Path) -> None:
    register(registry, tmp_path, "a")
    register(registry, tmp_path, "b")
    with pytest.raises(NotFoundError) as info:
        registry.model(TASK, 7)
    message = str(info.value)
    assert "no model version 7" in message and "versions: [1, 2]" in message
    assert registry.store.url in message


def test_download_model_round_trip(registry: Registry, tmp_path: Path) -> None:
    source = model_dir(tmp_path / "src", "dl")
    registry.register_model(
        TASK,
        source,
        kind="toy",
        params={},
        metrics=Metrics({"auc": 0.9}, primary="auc"),
        dataset_hash="cd" * 32,
        schema=SCHEMA,
    )
    registry.promote(TASK, 1)
    for name in (1, "latest", "champion"):
        dest = registry.download_model(TASK, name, tmp_path / f"dl-{name}")
        got = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
        assert got == ["sub/config.json", "weights.bin"]
        for rel in got:
            assert (dest / rel).read_bytes() == (source / rel).read_bytes()


# -- aliases --------------------------------------------------------------------------------


def test_promote_moves_champion_and_records_history(registry: Registry, tmp_path: Path) -> None:
    one, two = register(registry, tmp_path, "a"), register(registry, tmp_path, "b")
    assert registry.alias(TASK) is None
    first = registry.promote(TASK, 1, reason="first model")
    assert registry.model(TASK, "champion") == one
    second = registry.promote(TASK, 2, reason="better")
    assert registry.model(TASK, "champion") == two
    assert (second.version, second.previous) == (2, 1)
    current = registry.alias(TASK)
    assert current is not None and current.etag == second.etag != first.etag
    history = registry.alias_history(TASK)
    assert [(h["version"], h["previous"], h["reason"]) for h in history] == [
        (1, None, "first model"),
        (2, 1, "better"),
    ]


def test_other_aliases_are_independent(registry: Registry, tmp_path: Path) -> None:
    register(registry, tmp_path, "a")
    register(registry, tmp_path, "b")
    registry.promote(TASK, 1)
    registry.promote(TASK, 2, alias="staging")
    assert registry.model(TASK, "champion").version == 1
    assert registry.model(TASK, "staging").version == 2
    assert registry.store.children(f"{TASK}/aliases") == ["champion.json", "history", "staging.json"]


def test_promoting_a_missing_version_fails_and_leaves_the_alias(registry: Registry, tmp_path: Path) -> None:
    register(registry, tmp_path, "a")
    before = registry.promote(TASK, 1)
    with pytest.raises(NotFoundError, match=r"no model version 9 .*versions: \[1\]"):
        registry.promote(TASK, 9)
    with pytest.raises(NotFoundError):
        registry.set_alias(TASK, 9, expected=before)
    assert registry.alias(TASK) == before
    assert len(registry.alias_history(TASK)) == 1


def test_set_alias_refuses_a_stale_or_absent_expectation(registry: Registry, tmp_path: Path) -> None:
    register(registry, tmp_path, "a")
    register(registry, tmp_path, "b")
    first = registry.set_alias(TASK, 1, expected=None)
    with pytest.raises(AliasConflictError):
        registry.set_alias(TASK, 2, expected=None)  # it exists now
    second = registry.set_alias(TASK, 2, expected=first)
    with pytest.raises(AliasConflictError):
        registry.set_alias(TASK, 1, expected=first)  # stale
    with pytest.raises(ValueError, match="no etag"):
        registry.set_alias(TASK, 1, expected=dataclasses.replace(second, etag=""))
    assert registry.alias(TASK) == second


# -- concurrency -------------------------------------------------------------------------


def test_concurrent_registrations_get_distinct_versions(registry: Registry, tmp_path: Path) -> None:
    workers = 5
    results = in_threads(workers, lambda i: register(registry, tmp_path, f"t{i}", score=i / 10))
    assert all(isinstance(r, ModelVersion) for r in results), results
    assert sorted(r.version for r in results) == list(range(1, workers + 1))
    committed = {mv.version: mv for mv in registry.versions(TASK)}
    assert len(committed) == workers
    for i, mv in enumerate(results):
        assert committed[mv.version].params["tag"] == f"t{i}"
        assert (
            registry.artifact(TASK, mv.version, "model/sub/config.json")
            == json.dumps({"tag": f"t{i}"}).encode()
        )


REGISTER_CHILD = (
    OPEN_STORE
    + """
import os
from mlplug.registry import Registry
from mlplug.schema import Column, Role, Schema
from mlplug.task import Metrics

import mlplug.registry
mlplug.registry.snapshot = lambda: {"python": sys.version.split()[0]}
registry = Registry(store)
schema = Schema(features=(Column("amount", Role.NUMERIC),), target="label", classes=("no", "yes"))
mode = sys.argv[3]
if mode == "die-after-first-model-file":
    real_put_file = store.put_file
    def put_file(key, path, **kwargs):
        real_put_file(key, path, **kwargs)
        os._exit(17)
    store.put_file = put_file
elif mode == "die-before-metadata":
    real_put = store.put
    def put(key, data, **kwargs):
        if key.endswith("/metadata.json"):
            os._exit(17)
        return real_put(key, data, **kwargs)
    store.put = put
else:
    wait_for_go()
mv = registry.register_model(
    "demo", Path(sys.argv[2]), kind="toy", params={"pid": os.getpid()},
    metrics=Metrics({"auc": 0.5}, primary="auc"), dataset_hash="0" * 64, schema=schema,
)
print(mv.version)
"""
)


def test_concurrent_registrations_from_processes_get_distinct_versions(
    mlplug_store: Store, tmp_path: Path
) -> None:
    source = model_dir(tmp_path, "proc")
    results = run_together(REGISTER_CHILD, [[mlplug_store.url, str(source), "race"]] * 3, tmp_path / "sync")
    assert [r.returncode for r in results] == [0, 0, 0], [r.stderr for r in results]
    assert sorted(int(r.stdout) for r in results) == [1, 2, 3]
    versions = Registry(mlplug_store).versions(TASK)
    assert [mv.version for mv in versions] == [1, 2, 3]
    assert len({mv.params["pid"] for mv in versions}) == 3


@pytest.mark.parametrize("crash", ["die-after-first-model-file", "die-before-metadata"])
def test_crash_mid_upload_leaves_no_visible_version(registry: Registry, tmp_path: Path, crash: str) -> None:
    committed = register(registry, tmp_path, "before")
    source = model_dir(tmp_path, "crash")
    # A model file called metadata.json, uploaded first, must not pass for the commit marker.
    (source / "metadata.json").write_text("{}")
    [result] = run_together(REGISTER_CHILD, [[registry.store.url, str(source), crash]], tmp_path / "sync")
    assert result.returncode == 17, result.stderr
    assert registry.store.exists(f"{TASK}/models/2/model/metadata.json")  # it died mid-upload
    assert not registry.store.exists(f"{TASK}/models/2/metadata.json")
    assert registry.versions(TASK) == [committed]
    with pytest.raises(NotFoundError, match=r"versions: \[1\]"):
        registry.model(TASK, 2)
    assert registry.model(TASK, "latest") == committed
    with pytest.raises(NotFoundError):
        registry.promote(TASK, 2)
    after = register(registry, tmp_path, "after")
    assert after.version == 3
    assert [mv.version for mv in registry.versions(TASK)] == [1, 3]


def test_concurrent_set_alias_with_the_same_expectation_has_one_winner(
    registry: Registry, tmp_path: Path
) -> None:
    workers = 4
    for i in range(workers + 1):
        register(registry, tmp_path, f"v{i}")
    expected = registry.promote(TASK, 1)
    results = in_threads(workers, lambda i: registry.set_alias(TASK, i + 2, expected=expected))
    winners = [r for r in results if isinstance(r, AliasRecord)]
    conflicts = [r for r in results if isinstance(r, AliasConflictError)]
    assert len(winners) == 1 and len(conflicts) == workers - 1, results
    current = registry.alias(TASK)
    assert current == winners[0]
    assert current.previous == 1
    assert [h["version"] for h in registry.alias_history(TASK)] == [1, current.version]


def test_concurrent_promotions_with_retries_end_consistent(registry: Registry, tmp_path: Path) -> None:
    workers = 4
    for i in range(workers + 1):
        register(registry, tmp_path, f"v{i}")
    registry.promote(TASK, 1)
    results = in_threads(workers, lambda i: registry.promote(TASK, i + 2, reason=f"worker {i}"))
    assert all(isinstance(r, AliasRecord) for r in results), results
    # Every move saw the one before it: following "previous" from version 1 visits each
    # promotion exactly once and ends at the current alias (no lost update).
    by_previous = {r.previous: r for r in results}
    assert len(by_previous) == workers
    chain, at = [], 1
    while at in by_previous:
        at = by_previous.pop(at).version
        chain.append(at)
    assert sorted(chain) == [2, 3, 4, 5]
    current = registry.alias(TASK)
    assert current is not None and current.version == chain[-1]
    assert current.updated_at == max(r.updated_at for r in results)
    history = registry.alias_history(TASK)
    assert len(history) == workers + 1
    assert sorted((h["previous"], h["version"]) for h in history[1:]) == sorted(
        (r.previous, r.version) for r in results
    )


# -- lifecycle hooks ---------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    @mlplug.hookimpl
    def after_register(self, task: str, version: ModelVersion, store: Store) -> None:
        # The version is committed when the hook runs.
        committed = store.exists(f"{task}/models/{version.version}/metadata.json")
        self.calls.append(("register", task, version.version, committed))

    @mlplug.hookimpl
    def after_promote(
        self, task: str, alias: str, version: ModelVersion, previous: AliasRecord | None, store: Store
    ) -> None:
        self.calls.append(("promote", task, alias, version.version, previous.version if previous else None))


class Broken:
    @mlplug.hookimpl
    def after_register(self, task: str, version: ModelVersion, store: Store) -> None:
        raise RuntimeError("register hook exploded")

    @mlplug.hookimpl
    def after_promote(self, task: str, alias: str, version: ModelVersion) -> None:
        raise RuntimeError("promote hook exploded")


@pytest.mark.usefixtures("fast_snapshot")
def test_registry_calls_lifecycle_hooks(
    any_store: Store, tmp_path: Path, mlplug_plugins, register_plugin
) -> None:
    recorder = Recorder()
    register_plugin(recorder, "recorder")
    registry = Registry(any_store, hook=mlplug_plugins.hook)
    register(registry, tmp_path, "a")
    register(registry, tmp_path, "b")
    registry.promote(TASK, 1)
    registry.promote(TASK, 2, alias="champion")
    assert recorder.calls == [
        ("register", TASK, 1, True),
        ("register", TASK, 2, True),
        ("promote", TASK, "champion", 1, None),
        ("promote", TASK, "champion", 2, 1),
    ]


@pytest.mark.usefixtures("fast_snapshot")
def test_a_failing_hook_does_not_undo_the_write(
    any_store: Store, tmp_path: Path, mlplug_plugins, register_plugin, caplog: pytest.LogCaptureFixture
) -> None:
    register_plugin(Broken(), "broken")
    registry = Registry(any_store, hook=mlplug_plugins.hook)
    with caplog.at_level(logging.ERROR, logger="mlplug.registry"):
        mv = register(registry, tmp_path, "a")
        record = registry.promote(TASK, 1)
    assert registry.versions(TASK) == [mv]
    assert registry.alias(TASK) == record
    assert "after_register failed" in caplog.text and "after_promote failed" in caplog.text
    assert registry.model(TASK, "champion") == mv
    assert register(registry, tmp_path, "b").version == 2


def test_a_repeated_registration_returns_the_version_it_committed(any_store, tmp_path: Path) -> None:
    registry = Registry(any_store)
    first = register(registry, tmp_path, "once", registration="flow-run-1")
    again = register(registry, tmp_path, "again", registration="flow-run-1")
    assert again.version == first.version and again.params == first.params
    assert [v.version for v in registry.versions(TASK)] == [first.version]
    other = register(registry, tmp_path, "other", registration="flow-run-2")
    assert other.version == first.version + 1


@pytest.mark.parametrize("name", ["²", "٣", "../x", "-1"])
def test_a_version_that_is_neither_a_number_nor_an_alias_is_not_found_naming_what_is_expected(
    registry: Registry, tmp_path: Path, name: str
) -> None:
    register(registry, tmp_path, "a")
    registry.set_alias(TASK, 1, expected=None)
    with pytest.raises(NotFoundError) as info:
        registry.model(TASK, name)
    assert str(info.value) == (
        f"task {TASK!r} has no version or alias {name!r} in {registry.store.url}; "
        "expected a version number, 'latest' or an alias (champion)"
    )
