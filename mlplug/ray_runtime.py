"""Ray for one tuning run: started (or joined) and shut down, its scratch under MLPLUG_HOME,
and quiet.

- Scratch. A local Ray writes its session directory (logs, sockets, spilled objects) to
  ``/tmp/ray`` unless told otherwise; mlplug tells it ``<MLPLUG_HOME>/ray``. Unix socket
  paths are limited to 107 bytes and Ray nests about 65 bytes below its temp directory, so
  when ``<MLPLUG_HOME>/ray`` is too long for that, Ray is given a short private link to it
  (``/tmp/mlplug-ray-XXXX/r``, removed afterwards): the files still land under MLPLUG_HOME.
- Quiet. Ray Tune's console reporter prints an experiment table, the results directory and a
  TensorBoard hint even at ``verbose=0``; ``RAY_AIR_NEW_OUTPUT=0`` selects the reporter that
  honours ``verbose``. A local Ray started with ``RAY_AUTH_MODE`` unset logs a warning that
  token authentication is on (it is, by default, as it should be); that one logger is set to
  errors while mlplug starts Ray. mlplug shows tuning progress itself (``mlplug.progress``).

Joining an existing cluster (``address``) changes none of its settings: its scratch, CPUs
and auth are the cluster's, so ``num_cpus`` is not passed (Ray refuses it with an address).
:mod:`mlplug.ray_join` checks the address and the token first, so that a wrong one fails in
one line instead of minutes of retries.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mlplug import ray_join
from mlplug.settings import get_settings

#: The most bytes of a Unix socket path (Linux: 108 including the terminating NUL).
SOCKET_PATH_MAX = 107
#: What Ray appends to its temp directory for its longest socket path:
#: ``/session_YYYY-MM-DD_HH-MM-SS_ffffff_<pid>/sockets/plasma_store``.
RAY_SOCKET_SUFFIX = 68
_AUTH_NOTICE_LOGGER = "ray._private.authentication.authentication_token_setup"


@dataclass(frozen=True)
class RaySession:
    #: The cluster joined, or ``None`` for a local Ray.
    address: str | None
    #: CPUs Ray can schedule on: the local ``cpus``, or the whole cluster's.
    cpus: int


@contextlib.contextmanager
def ray_session(*, address: str | None, cpus: int) -> Iterator[RaySession]:
    """Ray initialised for the block and shut down after it, unless it was already running
    (then it is left as it was)."""
    import ray

    with _quiet_tune_output():
        if ray.is_initialized():
            yield RaySession(address, _cluster_cpus(cpus))
            return
        with contextlib.ExitStack() as scratch:  # closed after ray.shutdown(): Ray uses it
            if address:
                ray_join.check_cluster(address)
                where: dict[str, object] = {"address": address}
            else:
                where = {
                    "num_cpus": cpus,
                    "_temp_dir": scratch.enter_context(_scratch_dir(get_settings().home)),
                }
            with _logger_level(_AUTH_NOTICE_LOGGER, logging.ERROR):
                try:
                    ray.init(
                        include_dashboard=False,
                        log_to_driver=False,
                        configure_logging=False,
                        logging_level=logging.WARNING,
                        **where,
                    )
                except (ConnectionError, RuntimeError, TimeoutError) as exc:
                    if not address:
                        raise
                    raise ray_join.explain_init_failure(address, exc) from exc
            try:
                yield RaySession(address, _cluster_cpus(cpus) if address else cpus)
            finally:
                ray.shutdown()


def _cluster_cpus(default: int) -> int:
    import ray

    return int(ray.cluster_resources().get("CPU", 0)) or default


def scratch_dir(home: Path) -> Path:
    """Where a local Ray keeps its session directories."""
    return home / "ray"


@contextlib.contextmanager
def _scratch_dir(home: Path) -> Iterator[str]:
    """:func:`scratch_dir` (created) when Ray's socket paths under it fit, else a short private
    link to it, removed on exit."""
    target = scratch_dir(home)
    target.mkdir(parents=True, exist_ok=True)
    if len(str(target).encode()) + RAY_SOCKET_SUFFIX <= SOCKET_PATH_MAX:
        yield str(target)
        return
    holder = Path(tempfile.mkdtemp(prefix="mlplug-ray-"))  # private (0700) and unique
    link = holder / "r"
    link.symlink_to(target, target_is_directory=True)
    try:
        yield str(link)
    finally:
        link.unlink(missing_ok=True)
        shutil.rmtree(holder, ignore_errors=True)


@contextlib.contextmanager
def _logger_level(name: str, level: int) -> Iterator[None]:
    logger = logging.getLogger(name)
    saved = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(saved)


@contextlib.contextmanager
def _quiet_tune_output() -> Iterator[None]:
    saved = os.environ.get("RAY_AIR_NEW_OUTPUT")
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("RAY_AIR_NEW_OUTPUT", None)
        else:
            os.environ["RAY_AIR_NEW_OUTPUT"] = saved
