"""Everything one server instance holds, passed to the routes as one typed object."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from mlplug.serving.auth import ApiKeys
from mlplug.serving.batching import AdaptiveBatcher
from mlplug.serving.config import ServeSettings
from mlplug.serving.lifecycle import Lifecycle
from mlplug.serving.metrics import ServingMetrics
from mlplug.serving.model_holder import ModelHolder
from mlplug.serving.observe import TrafficTap
from mlplug.serving.schemas import RequestContract
from mlplug.task import TaskType


@dataclass
class ServingState:
    settings: ServeSettings
    task: TaskType
    holder: ModelHolder
    contract: RequestContract
    keys: ApiKeys
    metrics: ServingMetrics
    tap: TrafficTap
    lifecycle: Lifecycle
    #: Gathers concurrent /predict requests into one model call; ``None``: no batching.
    batcher: AdaptiveBatcher | None = None
    explain_slots: threading.BoundedSemaphore = field(init=False)

    def __post_init__(self) -> None:
        self.explain_slots = threading.BoundedSemaphore(self.settings.explain_concurrency)

    @property
    def ready(self) -> bool:
        return self.holder.loaded and not self.lifecycle.draining and self.staleness() is None

    def staleness(self) -> str | None:
        """Why the served model or the API keys are too old to trust, or None."""
        limit = self.settings.staleness_limit
        if limit is None:
            return None
        model_age = self.holder.stale_for()
        if model_age > limit:
            return (
                f"the served model was last confirmed against alias {self.holder.ref!r} "
                f"{model_age:.0f} s ago (limit {limit:g} s, MLPLUG_MAX_STALENESS): "
                f"{self.holder.status.last_error or 'no successful poll'}"
            )
        keys_age = self.keys.stale_for()
        if keys_age > limit:
            return (
                f"the API keys were last read {keys_age:.0f} s ago (limit {limit:g} s, "
                f"MLPLUG_MAX_STALENESS): {self.keys.last_error or 'no successful read'}"
            )
        return None
