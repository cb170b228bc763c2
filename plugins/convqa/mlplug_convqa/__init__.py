"""mlplug convqa plugin: QA of customer-support conversations with a transformers classifier.

Registered through the entry point ``convqa = "mlplug_convqa"`` in the ``mlplug`` group.
Importing this package is cheap: torch, transformers and scikit-learn load only when a
model is built, trained or scored.
"""

from __future__ import annotations

from collections.abc import Callable

import mlplug
from mlplug.task import TaskType
from mlplug_convqa.task import ConvQATask

MLPLUG_API_VERSION = "1"

__all__ = ["MLPLUG_API_VERSION", "ConvQATask", "register_tasks"]


@mlplug.hookimpl
def register_tasks(register: Callable[[TaskType], None]) -> None:
    register(ConvQATask())
