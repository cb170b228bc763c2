"""Checksums and the local model cache: what is loaded is what was registered, or an error
that names the version and the file. Real stores: file:// and moto's S3 server."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlplug import layout
from mlplug.errors import CorruptFileError
from mlplug.model_cache import cache_key, local_copy
from mlplug.registry import Registry
from mlplug.scoring import load_version
from mlplug.settings import Settings
from mlplug.storage.base import Store
from mlplug.storage.s3 import open_s3
from mlplug.task import Metrics
from mlplug.testing.servers import S3Server, moto_s3_server
from tests.toy_task import ConstantModel, ToyTask

TASK = ToyTask("toy")
ROWS = pd.DataFrame({"x": [0.0, 1.0, 2.0]})


def register(registry: Registry, tmp_path: Path, rate: float) -> int:
    data = TASK.synthesize(50)
    ref = registry.put_dataset("toy", data)
    folder = tmp_path / f"model-{rate}"
    folder.mkdir(exist_ok=True)
    ConstantModel(rate).save(folder)
    mv = registry.register_model(
        "toy", folder, kind="model", params={}, metrics=Metrics({"accuracy": 0.5}, "accuracy"),
        dataset_hash=ref.hash, schema=data.schema, artifacts={"notes.json": b'{"a": 1}'},
    )  # fmt: skip
    return mv.version


def positive_rate(registry: Registry) -> float:
    return float(load_version(TASK, registry, "latest").model.predict_proba(ROWS)[0, 1])


def test_every_file_has_its_sha256_recorded(any_store: Store, tmp_path: Path) -> None:
    registry = Registry(any_store)
    mv = registry.model("toy", register(registry, tmp_path, 0.3))
    assert set(mv.checksums) == set(mv.files) == {"model/rate.txt", "env.json", "notes.json"}
    assert all(len(c) == 64 for c in mv.checksums.values())


def test_a_flipped_bit_in_the_store_is_an_error_naming_version_and_file(mlplug_store, tmp_path: Path) -> None:
    registry = Registry(mlplug_store)
    register(registry, tmp_path, 0.25)
    stored = mlplug_store.root / "toy" / "models" / "1" / "model" / "rate.txt"
    original = stored.read_bytes()
    stored.write_bytes(original.replace(b"0.25", b"0.35"))  # one digit: still a valid model
    with pytest.raises(CorruptFileError, match=r"^toy v1: model/rate.txt is corrupt \(file://.*sha256"):
        load_version(TASK, registry, "latest")
    (mlplug_store.root / "toy" / "models" / "1" / "notes.json").write_bytes(b'{"a": 2}')
    with pytest.raises(CorruptFileError, match=r"toy v1: notes\.json is corrupt"):
        registry.artifact("toy", 1, "notes.json")
    stored.write_bytes(original)  # the store is mended: nothing stale stays in the way
    assert positive_rate(registry) == pytest.approx(0.25)


def test_a_truncated_download_is_removed_and_a_damaged_local_copy_is_replaced(mlplug_store, tmp_path) -> None:
    registry = Registry(mlplug_store)
    register(registry, tmp_path, 0.4)
    stored = mlplug_store.root / "toy" / "models" / "1" / "model" / "rate.txt"
    original = stored.read_bytes()
    stored.write_bytes(original[:2])  # a cut-off upload
    dest = tmp_path / "download"
    with pytest.raises(CorruptFileError, match=r"model/rate\.txt is corrupt"):
        registry.download_model("toy", 1, dest)
    assert not (dest / "rate.txt").exists()  # nothing half-written is left behind
    stored.write_bytes(original)
    assert positive_rate(registry) == pytest.approx(0.4)
    copy = local_copy(registry, registry.model("toy", 1))
    (copy / "rate.txt").write_text("0.9")  # damage on the local disk
    assert positive_rate(registry) == pytest.approx(0.4)  # evicted and downloaded again
    assert (copy / "rate.txt").read_bytes() == original


def test_a_store_recreated_at_the_same_url_does_not_serve_the_old_copy(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MLPLUG_HOME", str(tmp_path / "home"))  # one cache for both stores
    from mlplug.storage.local import LocalStore

    root = tmp_path / "store"
    first = Registry(LocalStore(root))
    register(first, tmp_path, 0.2)
    assert positive_rate(first) == pytest.approx(0.2)
    import shutil

    shutil.rmtree(root)
    second = Registry(LocalStore(root))  # same URL, another version 1
    register(second, tmp_path, 0.7)
    assert positive_rate(second) == pytest.approx(0.7)


def test_the_same_s3_url_on_another_endpoint_does_not_serve_the_other_copy(
    s3_server: S3Server, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("MLPLUG_HOME", str(tmp_path / "home"))
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    with moto_s3_server(tmp_path / "moto-2") as other:
        rates = {}
        for server, rate in ((s3_server, 0.15), (other, 0.85)):
            server.create_bucket("same-name")
            registry = Registry(
                open_s3("s3://same-name/store", Settings(s3_endpoint_url=server.endpoint_url))
            )
            register(registry, tmp_path, rate)
            rates[server.endpoint_url] = (registry, rate)
        for registry, rate in rates.values():
            assert positive_rate(registry) == pytest.approx(rate)
        keys = {cache_key(r, r.model("toy", 1)) for r, _ in rates.values()}
        assert len(keys) == 2


def test_versions_without_checksums_still_load(mlplug_store, tmp_path: Path) -> None:
    registry = Registry(mlplug_store)
    register(registry, tmp_path, 0.6)
    meta = mlplug_store.root / "toy" / "models" / "1" / layout.METADATA
    import json

    data = json.loads(meta.read_text())
    del data["checksums"]  # as an older mlplug wrote it
    meta.write_text(json.dumps(data))
    assert registry.model("toy", 1).checksums == {}
    assert np.isclose(positive_rate(registry), 0.6)
