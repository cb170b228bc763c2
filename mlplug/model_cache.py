"""Local copies of model versions, so that loading a version again costs no download.

A copy is keyed by what the version's files are (the sha256 recorded at registration), not by
where they came from: a store recreated at the same URL, or the same ``s3://`` URL on another
endpoint, cannot hand out an old copy. Every load checks the copy's files against those
checksums; a copy that fails (a download cut short, a bit flipped on disk) is evicted and
downloaded again, and a store copy that fails is an error naming the version and the file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from mlplug import layout
from mlplug.registry import ModelVersion, Registry, sha256_file
from mlplug.settings import get_settings

log = logging.getLogger(__name__)


def local_copy(registry: Registry, version: ModelVersion) -> Path:
    """A verified local folder with ``version``'s model files."""
    final = get_settings().home / "cache" / "models" / cache_key(registry, version)
    if final.is_dir():
        problem = damage(version, final)
        if problem is None:
            return final
        log.warning("%s v%d: local copy %s is damaged (%s); downloading again", version.task,
                    version.version, final, problem)  # fmt: skip
        shutil.rmtree(final, ignore_errors=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=".download-"))
    try:
        registry.download_model(version.task, version.version, tmp)  # verified file by file
        try:
            os.rename(tmp, final)  # atomic; a concurrent downloader may have won
        except OSError:
            if not final.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def cache_key(registry: Registry, version: ModelVersion) -> str:
    recorded = {n: c for n, c in version.checksums.items() if layout.is_model_file(n)}
    if recorded:
        identity = json.dumps(recorded, sort_keys=True)
    else:  # registered before checksums: where it is and when it was made
        identity = json.dumps([registry.store.url, getattr(registry.store, "endpoint", None),
                               version.task, version.version, version.created_at])  # fmt: skip
    digest = hashlib.sha256(identity.encode()).hexdigest()[:24]
    return f"{version.task}-v{version.version}-{digest}"


def damage(version: ModelVersion, folder: Path) -> str | None:
    """What is wrong with a local copy, or ``None`` when every file is as registered."""
    for name in version.files:
        if not layout.is_model_file(name):
            continue
        path = folder / layout.model_path(name)
        if not path.is_file():
            return f"{name} is missing"
        expected = version.checksums.get(name)
        if expected is not None and sha256_file(path) != expected:
            return f"{name} does not match its sha256"
    return None
