"""Base job templates of the work pools mlplug creates (``mlplug deploy``)."""

from __future__ import annotations

from typing import Any

from mlplug.errors import MlplugError


def base_job_template(pool_type: str) -> dict[str, Any]:
    """The worker's own default template for ``pool_type`` (``process`` or ``kubernetes``)."""
    if pool_type == "process":
        from prefect.workers.process import ProcessWorker

        return ProcessWorker.get_default_base_job_template()
    if pool_type == "kubernetes":
        try:
            from prefect_kubernetes.worker import KubernetesWorker
        except ImportError:
            raise MlplugError(
                "a kubernetes work pool needs prefect-kubernetes: pip install 'mlplug[k8s]'"
            ) from None
        return KubernetesWorker.get_default_base_job_template()
    raise MlplugError(f"unknown work pool type {pool_type!r}; expected process or kubernetes")
