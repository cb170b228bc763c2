"""Turn user-supplied loader options into a task's typed options model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from mlplug.errors import DataError
from mlplug.task import LoadOptions, TaskType


def parse_options(task: TaskType, options: Mapping[str, Any] | None) -> LoadOptions:
    """Validate ``options`` against ``task.options_model``; errors name each bad field."""
    try:
        return task.options_model(**dict(options or {}))
    except ValidationError as exc:
        fields = task.options_model.model_fields
        problems = "; ".join(
            f"--{'.'.join(map(str, e['loc'])).replace('_', '-')}: {e['msg']}" for e in exc.errors()
        )
        allowed = ", ".join(f"--{f.replace('_', '-')}" for f in fields) or "none"
        raise DataError(f"invalid options for task {task.name!r}: {problems} (options: {allowed})") from None
