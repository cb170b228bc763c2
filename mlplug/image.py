"""Facts about the mlplug container image that its Kubernetes objects depend on.

The ``Dockerfile`` builds the image; the serving Deployment (:mod:`mlplug.k8s`) and the flow-run
Job (:mod:`mlplug.workpools`) run it. Both need the same user, the same code directory and the
same writable paths, so those live here once, and ``tests/test_workpools.py`` checks them
against the ``Dockerfile``.
"""

from __future__ import annotations

from typing import Any

import mlplug

#: The image's unprivileged user and group (``useradd --uid 10001`` in the Dockerfile).
RUN_AS = 10001
#: Where the Dockerfile copies ``flows/`` and ``prefect.yaml``: deployments' entrypoints
#: (``flows/train.py:train``) resolve from here, so flow-run Jobs start in this directory and
#: deployments pull with ``set_working_directory`` to it.
IMAGE_CODE_DIR = "/app"
#: ``MLPLUG_HOME`` in the image: local scratch (Ray Tune trial directories, downloads).
STATE_DIR = "/var/lib/mlplug"
#: ``PREFECT_HOME`` in the image.
PREFECT_HOME = f"{STATE_DIR}/prefect"
#: The user's home directory. Ray writes its token-auth secret to ``~/.ray/auth_token`` and
#: library caches go under ``~/.cache``, so with a read-only root filesystem it must be a volume.
HOME_DIR = "/home/mlplug"


def default_image() -> str:
    """The tag ``docker build -t mlplug:<version> .`` gives the image of this release."""
    return f"mlplug:{mlplug.__version__}"


def pod_security_context() -> dict[str, Any]:
    """Run as the image's user, never root, with the runtime's default seccomp profile."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    """No privilege escalation, no capabilities, nothing written outside mounted volumes."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
