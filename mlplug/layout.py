"""Where everything lives in a store: the one module that builds store keys and names files.

::

    <task>/datasets/<sha256>/data.parquet  manifest.json
    <task>/models/<version>/.claim                       reserves the number (create-only)
    <task>/models/<version>/model/...                    the files Model.save wrote
    <task>/models/<version>/env.json  evaluation.json  business_value.json  explanation.json
                            trials.json  predictions.parquet  reference.profile  report.html
    <task>/models/<version>/metadata.json                written last: the commit point
    <task>/registrations/<name>.json                     the version a named registration claimed
    <task>/registrations/<name>.notified.json            its after_register hooks have run
    <task>/aliases/<alias>.json                          moved with compare-and-swap
    <task>/aliases/history/<alias>/<time>-v<version>-<suffix>.json
    <task>/profiles/<version>/<UTC time>-<writer>.profile
    <task>/monitoring/<UTC time>-v<version>/drift.json  report.html
    <task>/deployments/<version>/manifests.yaml

Keys are POSIX-style and relative to the store's root; every reader and writer builds them
here, so the layout can be read in one place and changed in one place.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

# -- file names ----------------------------------------------------------------------------

DATASET_DATA = "data.parquet"
DATASET_MANIFEST = "manifest.json"

CLAIM = ".claim"
METADATA = "metadata.json"
ENVIRONMENT = "env.json"
MODEL_DIR = "model"
EVALUATION = "evaluation.json"
BUSINESS_VALUE = "business_value.json"
EXPLANATION = "explanation.json"
TRIALS = "trials.json"
PREDICTIONS = "predictions.parquet"
REFERENCE_PROFILE = "reference.profile"
REPORT = "report.html"
#: Fingerprints of the rows the version was fitted on (:mod:`mlplug.row_fingerprints`).
FITTED_ROWS = "fitted_rows.npy"

DRIFT = "drift.json"
MANIFESTS = "manifests.yaml"

PROFILE_SUFFIX = ".profile"
#: Written by the registry itself; a run's artifacts may not take these names.
RESERVED = frozenset({CLAIM, METADATA, ENVIRONMENT})

_PROFILE_TIME = "%Y%m%dT%H%M%S.%fZ"
_RUN_TIME = "%Y%m%dT%H%M%SZ"


# -- datasets ------------------------------------------------------------------------------


def datasets(task: str) -> str:
    return f"{task}/datasets"


def dataset(task: str, digest: str, name: str) -> str:
    """``name`` is :data:`DATASET_DATA` or :data:`DATASET_MANIFEST`."""
    return f"{task}/datasets/{digest}/{name}"


# -- model versions ------------------------------------------------------------------------


def models(task: str) -> str:
    return f"{task}/models"


def model_version(task: str, version: int) -> str:
    """The folder of a version (for links); its files are :func:`model_file`."""
    return f"{task}/models/{version}"


def model_file(task: str, version: int, name: str) -> str:
    """A file of a version: an artifact name, :data:`METADATA`, or ``model/<path>``."""
    return f"{task}/models/{version}/{name}"


def model_version_of(key: str) -> tuple[int, str] | None:
    """``(version, name)`` for a key under :func:`models`, or ``None`` for other keys.

    ``name`` is the path below the version folder (``metadata.json``, ``model/x.cbm``)."""
    parts = key.split("/", 3)
    if len(parts) < 4 or parts[1] != "models" or not parts[2].isdigit():
        return None
    return int(parts[2]), parts[3]


def model_entry(path: str) -> str:
    """The version file name (``model/<path>``) of a file the model folder holds at ``path``."""
    return f"{MODEL_DIR}/{path}"


def is_model_file(name: str) -> bool:
    return name.startswith(f"{MODEL_DIR}/")


def model_path(name: str) -> str:
    """The path inside the model folder of a version file ``model/<path>``."""
    return name[len(MODEL_DIR) + 1 :]


def registration(task: str, name: str) -> str:
    """Which version a named registration claimed; read by a retry of the same registration."""
    return f"{task}/registrations/{name}.json"


def registration_notified(task: str, name: str) -> str:
    """Written once a named registration's ``after_register`` hooks have run, so that a retry
    that finds the version committed runs them only if the earlier attempt did not."""
    return f"{task}/registrations/{name}.notified.json"


# -- aliases -------------------------------------------------------------------------------


_ALIAS_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def is_alias_name(name: str) -> bool:
    """ASCII letters, digits, ``_``, ``.`` and ``-``, not starting with a dot or dash."""
    return _ALIAS_NAME.fullmatch(name) is not None


def aliases(task: str) -> str:
    return f"{task}/aliases"


def alias(task: str, name: str) -> str:
    return f"{task}/aliases/{name}.json"


def alias_history(task: str, name: str) -> str:
    return f"{task}/aliases/history/{name}"


def alias_history_entry(task: str, name: str, updated_at: str, version: int, suffix: str) -> str:
    stamp = updated_at.replace(":", "").replace("-", "")
    return f"{alias_history(task, name)}/{stamp}-v{version}-{suffix}.json"


# -- traffic profiles ----------------------------------------------------------------------


def profiles(task: str, version: int) -> str:
    return f"{task}/profiles/{version}/"


def profile(task: str, version: int, at: datetime, writer: str) -> str:
    return f"{profiles(task, version)}{at.astimezone(UTC).strftime(_PROFILE_TIME)}-{writer}{PROFILE_SUFFIX}"


def profile_time(key: str) -> datetime | None:
    """When the profile at ``key`` was flushed, or ``None`` for a key mlplug did not write."""
    name = key.rsplit("/", 1)[-1]
    if not name.endswith(PROFILE_SUFFIX):
        return None
    try:
        return datetime.strptime(name.split("-", 1)[0], _PROFILE_TIME).replace(tzinfo=UTC)
    except ValueError:
        return None


# -- monitoring ----------------------------------------------------------------------------


def monitoring(task: str) -> str:
    return f"{task}/monitoring/"


def monitor_run(task: str, version: int, created_at: str) -> str:
    """The folder of one monitor run's ``drift.json`` and ``report.html``."""
    at = datetime.fromisoformat(created_at).astimezone(UTC).strftime(_RUN_TIME)
    return f"{task}/monitoring/{at}-v{version}"


def monitor_run_time(key: str) -> datetime:
    """When the monitor run whose file is at ``key`` ran."""
    stamp = key.split("/")[-2].split("-v")[0]
    return datetime.strptime(stamp, _RUN_TIME).replace(tzinfo=UTC)


# -- deployments ---------------------------------------------------------------------------


def deployment_manifests(task: str, version: int) -> str:
    return f"{task}/deployments/{version}/{MANIFESTS}"
