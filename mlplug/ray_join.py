"""Joining an existing Ray cluster (``MLPLUG_RAY_ADDRESS``), or saying in one line why not.

``ray.init(address=...)`` on its own is a poor first contact: an address nobody listens on
makes it retry for many minutes, and a missing or wrong token (Ray 2.60 clusters use token
authentication) ends, after about 20 s of C++ warnings, in "Failed to connect to Ray
cluster". So before it, mlplug checks that the head's port answers (a TCP connect with a
timeout) and that the cluster accepts this driver's token (one GCS request, which fails at
once on a bad token), and raises :class:`~mlplug.errors.RayClusterError` naming the address
and what to set.

The token is Ray's business, read where Ray reads it: ``RAY_AUTH_TOKEN``, else the file named
by ``RAY_AUTH_TOKEN_PATH``, else ``~/.ray/auth_token``; it is sent only with
``RAY_AUTH_MODE=token``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from pathlib import Path
from typing import Any

from mlplug.errors import RayClusterError

#: Seconds to wait for the head's port, and for its answer to the token check.
CONNECT_TIMEOUT = 10.0
#: Where the address comes from, for messages.
ADDRESS_SETTING = "MLPLUG_RAY_ADDRESS"


def check_cluster(address: str) -> None:
    """Raise :class:`RayClusterError` unless the cluster at ``address`` (``host:port`` of
    its head) can be reached and accepts this driver's token."""
    if address.startswith("ray://"):
        raise RayClusterError(
            f"{ADDRESS_SETTING}={address}: Ray Client addresses (ray://) are not supported; give "
            "the head's GCS address host:port (port 6379 unless `ray start --head --port` "
            "changed it), from a machine that is a node of the cluster"
        )
    if address == "auto":  # Ray finds the cluster this machine belongs to
        return
    host, port = _host_port(address)
    _check_reachable(address, host, port)
    reload_token()
    _check_token_present()
    _check_token(address)


def explain_init_failure(address: str, exc: BaseException) -> RayClusterError:
    """What ``ray.init(address=...)`` failing after the checks means, in one line."""
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return RayClusterError(
        f"could not join the Ray cluster at {address} ({ADDRESS_SETTING}): {reason}. The "
        "machine that runs the flow must itself be a node of the cluster (`ray start "
        f"--address={address} --num-cpus=0`) with the same Ray and Python versions"
    )


def token_source() -> str:
    """Where Ray reads this driver's token from, as a person would look for it."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "RAY_AUTH_TOKEN"
    if os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return f"the file RAY_AUTH_TOKEN_PATH={os.environ['RAY_AUTH_TOKEN_PATH']}"
    return "~/.ray/auth_token"


def reload_token() -> None:
    """Make Ray read ``RAY_AUTH_MODE`` and the token again. It reads them once per process
    and keeps them: a local Ray tuned earlier in the process turns token mode on with its
    own token, which would be sent to the cluster in place of the cluster's."""
    with contextlib.suppress(ImportError, AttributeError):
        from ray._raylet import AuthenticationTokenLoader, Config

        Config.initialize("")  # what Ray itself does after changing RAY_AUTH_MODE
        AuthenticationTokenLoader.instance().reset_cache()


def _host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise RayClusterError(
            f"{ADDRESS_SETTING}={address!r}: expected host:port of the Ray head's GCS "
            "(for example ray-head:6379)"
        )
    return host.strip("[]"), int(port)


def _check_reachable(address: str, host: str, port: int) -> None:
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
            pass
    except OSError as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise RayClusterError(
            f"cannot reach the Ray cluster at {address} ({ADDRESS_SETTING}): {reason}; is the "
            "head node running (`ray start --head`) and its GCS port open to this machine?"
        ) from None


def _check_token_present() -> None:
    """With token mode on, a token Ray can read: Ray's C++ client aborts the whole process
    when a token file it was pointed at cannot be read, so this is checked here first."""
    if os.environ.get("RAY_AUTH_MODE", "").lower() != "token" or os.environ.get("RAY_AUTH_TOKEN"):
        return
    named = os.environ.get("RAY_AUTH_TOKEN_PATH")
    path = Path(named) if named else Path.home() / ".ray" / "auth_token"
    try:
        if path.read_text().strip():
            return
        problem = "is empty"
    except OSError as exc:
        problem = f"cannot be read ({exc.strerror or exc})"
    where = f"RAY_AUTH_TOKEN_PATH={named}" if named else str(path)
    raise RayClusterError(
        f"RAY_AUTH_MODE=token but this driver has no token: {where} {problem}; {_SET_TOKEN}"
    )


def _check_token(address: str) -> None:
    try:
        from ray._raylet import GcsClient
        from ray.exceptions import AuthenticationError
    except ImportError:  # a Ray without these internals: ray.init will tell
        return
    outcome: dict[str, Any] = {}

    def ask() -> None:
        try:
            GcsClient(address=address).cluster_id  # noqa: B018 - the request is the check
            outcome["ok"] = True
        except BaseException as exc:  # reported below
            outcome["error"] = exc

    # In a thread: a port that answers TCP but is not a Ray GCS may never answer gRPC.
    asker = threading.Thread(target=ask, daemon=True, name="mlplug-ray-token-check")
    asker.start()
    asker.join(CONNECT_TIMEOUT)
    error = outcome.get("error")
    if asker.is_alive():
        raise RayClusterError(
            f"{address} ({ADDRESS_SETTING}) accepts connections but did not answer as a Ray "
            f"head within {CONNECT_TIMEOUT:.0f} s; is it the GCS port of `ray start --head`?"
        )
    if isinstance(error, AuthenticationError):
        raise RayClusterError(_token_message(address, str(error))) from None
    # Anything else: ray.init reports it (explain_init_failure).


_SET_TOKEN = (
    "set RAY_AUTH_TOKEN to the cluster's token (or RAY_AUTH_TOKEN_PATH to a file holding it; "
    "`ray get-auth-token` on the head prints it)"
)


def _token_message(address: str, ray_message: str) -> str:
    if "InvalidAuthToken" not in ray_message:  # no token at all
        first = ray_message.split(". ")[0]
        return f"Ray token authentication is on but this driver has no token ({first}); {_SET_TOKEN}"
    if os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
        return (
            f"the Ray cluster at {address} requires token authentication and this driver sent "
            f"no token: set RAY_AUTH_MODE=token and {_SET_TOKEN.removeprefix('set ')}"
        )
    return f"the Ray cluster at {address} refused this driver's token (from {token_source()}); {_SET_TOKEN}"
