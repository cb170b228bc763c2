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

Joining an existing cluster (``address``) changes none of its settings: its CPUs and auth
are the cluster's, so ``num_cpus`` is not passed (Ray refuses it with an address).
:mod:`mlplug.ray_join` checks the address and the token first, so that a wrong one fails in
one line instead of minutes of retries. Ray attaches a driver to a raylet on the driver's
own machine, so unless ``MLPLUG_RAY_DRIVER_NODE=false`` this machine joins the cluster as a
zero-CPU node for the session (:mod:`mlplug.ray_node`; its session directory under
``<MLPLUG_HOME>/ray``, stopped afterwards): a flow-run pod outside the cluster can drive it,
and no trial runs on it.
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
from mlplug.errors import RayClusterError
from mlplug.ray_node import RayNode, start_node
from mlplug.settings import get_settings

#: The most bytes of a Unix socket path (Linux: 108 including the terminating NUL).
SOCKET_PATH_MAX = 107
#: What Ray appends to its temp directory for its longest socket path:
#: ``/session_YYYY-MM-DD_HH-MM-SS_ffffff_<pid>/sockets/plasma_store``.
RAY_SOCKET_SUFFIX = 68
_AUTH_NOTICE_LOGGER = "ray._private.authentication.authentication_token_setup"
#: Prefix of the temp directory of this machine's node when it drives a cluster.
_DRIVER_NODE_DIR = "driver-"


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
                if get_settings().ray_driver_node:
                    node = scratch.enter_context(_driver_node(address, get_settings().home))
                    where["_temp_dir"] = str(node.temp_dir)  # attach to this node, not another
            else:
                where = {
                    "num_cpus": cpus,
                    "_temp_dir": scratch.enter_context(_scratch_dir(get_settings().home)),
                }
            # Ray reads the token once per process: a session before this one (a cluster
            # joined, a local Ray with another token) must not lend it its token.
            ray_join.reload_token()
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


@contextlib.contextmanager
def _driver_node(address: str, home: Path) -> Iterator[RayNode]:
    """This machine as a zero-CPU node of the cluster at ``address`` for the block: Ray
    attaches a driver to a raylet on its own machine, and schedules no trial here."""
    with _scratch_dir(home, extra=len(_DRIVER_NODE_DIR) + 12) as scratch:
        temp_dir = Path(scratch) / f"{_DRIVER_NODE_DIR}{os.getpid()}"
        try:
            node = start_node(temp_dir, ["--address", address], cpus=0, env=dict(os.environ))
        except RuntimeError as exc:
            raise RayClusterError(
                f"could not make this machine a node of the Ray cluster at {address} (needed to "
                f"drive it; MLPLUG_RAY_DRIVER_NODE=false if it already is one): `ray start` failed, "
                f"see {temp_dir}.log"
            ) from exc
        try:
            yield node
        finally:
            node.stop()


def scratch_dir(home: Path) -> Path:
    """Where a local Ray keeps its session directories."""
    return home / "ray"


@contextlib.contextmanager
def _scratch_dir(home: Path, extra: int = 0) -> Iterator[str]:
    """:func:`scratch_dir` (created) when Ray's socket paths under it fit (with ``extra``
    bytes of subdirectory), else a short private link to it, removed on exit."""
    target = scratch_dir(home)
    target.mkdir(parents=True, exist_ok=True)
    if len(str(target).encode()) + extra + RAY_SOCKET_SUFFIX <= SOCKET_PATH_MAX:
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
