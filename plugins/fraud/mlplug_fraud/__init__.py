"""mlplug plugin for card-fraud detection: registers the ``fraud`` task type.

Installed through the entry point ``[project.entry-points.mlplug] fraud = "mlplug_fraud"``.
"""

from __future__ import annotations

from collections.abc import Callable

import mlplug
from mlplug.task import TaskType
from mlplug_fraud.task import FraudTask
from mlplug_fraud.value import CostModel

#: The plugin API major version this plugin is written for (checked by mlplug's loader).
MLPLUG_API_VERSION = "1"

__all__ = ["MLPLUG_API_VERSION", "CostModel", "FraudTask", "register_tasks"]


@mlplug.hookimpl
def register_tasks(register: Callable[[TaskType], None]) -> None:
    register(FraudTask())
