"""Settings of the inference server: one validated class, read from the environment when asked.

``mlplug serve`` sets the variables from its options, so the server reads its settings the
same way whether it was started from the CLI, by uvicorn's ``--factory`` with several
workers, or in a Kubernetes pod whose ConfigMap provides them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlplug.settings import settings_error


class ServeSettings(BaseSettings):
    """Environment variables prefixed ``MLPLUG_`` (``MLPLUG_TASK``, ``MLPLUG_API_KEYS``, ...)."""

    model_config = SettingsConfigDict(env_prefix="MLPLUG_", extra="ignore")

    #: Task type to serve; one listed by ``mlplug tasks``.
    task: str = ""
    #: Alias (``champion``), ``latest`` or a version number. An alias is followed: when it
    #: moves, the server loads the new version and swaps it in.
    model: str = "champion"
    #: Store URL; empty means ``MLPLUG_STORE`` as read by :class:`mlplug.settings.Settings`.
    store: str = ""
    #: Comma-separated API keys. Never logged; compared in constant time.
    api_keys: SecretStr = SecretStr("")
    #: A file of keys, or a directory of them (a mounted Kubernetes Secret: one file per
    #: key). Re-read on every reload poll, so a rotated Secret takes effect without a restart.
    api_keys_file: Path | None = None
    #: Serve without API keys. Needed explicitly; the server logs a warning.
    insecure: bool = False
    #: Largest request body in bytes; larger ones get 413.
    max_body_bytes: int = Field(default=1_000_000, ge=1_024)
    #: Most bytes in a request's line and headers together; more get 431 (read no further).
    max_header_bytes: int = Field(default=16_384, ge=1_024)
    #: Most header fields in one request; more get 431.
    max_headers: int = Field(default=100, ge=8)
    #: Open client connections; one more is answered 503 and closed. Capped at what the
    #: process's file-descriptor limit allows (the soft limit is raised to the hard one).
    max_connections: int = Field(default=1_000, ge=1)
    #: Seconds a connection may stay open without sending a request (fresh or between
    #: requests) before it is closed.
    keepalive_timeout: float = Field(default=5.0, gt=0.0)
    #: Seconds from a request's first byte to its last (head and body); slower ones get 408.
    request_timeout: float = Field(default=10.0, gt=0.0)
    #: Seconds a connection may keep its answers waiting because the client does not read
    #: them (the write buffer stays above its high-water mark); then it is closed and its
    #: buffer freed.
    write_timeout: float = Field(default=30.0, gt=0.0)
    #: Most records in one /predict request; more get 422.
    max_batch: int = Field(default=1_000, ge=1)
    #: Most records in one /explain request (attributions cost far more than predictions).
    max_explain_rows: int = Field(default=50, ge=1)
    #: Concurrent /explain requests; more get 429 so that explanations cannot starve predictions.
    explain_concurrency: int = Field(default=1, ge=1)
    #: Seconds between polls of the alias (and of the API key file). 0 disables reloading.
    reload_interval: float = Field(default=30.0, ge=0.0)
    #: Readiness turns false when no poll has confirmed the served version (or re-read the
    #: API key file) for this many seconds: the store is unreachable, the alias is gone, or
    #: the new version cannot be loaded. 0 turns the check off. At least 2 x the interval.
    max_staleness: float = Field(default=300.0, ge=0.0)
    #: Seconds that in-flight requests get to finish after SIGTERM.
    graceful_timeout: float = Field(default=20.0, ge=0.0)
    #: Requests waiting for traffic observers before new ones are dropped (and counted).
    observe_queue: int = Field(default=10_000, ge=1)
    #: FastAPI's OpenTelemetry spans and metrics (for a configured OTel provider).
    otel: bool = False
    #: Adaptive batching of concurrent /predict requests: ``auto`` does what the task type
    #: declares (``TaskType.adaptive_batching``), ``on`` batches any task, ``off`` never.
    batching: Literal["auto", "on", "off"] = "auto"
    #: Most rows in one batched model call (default: the task type's, else 32).
    batch_max_rows: int | None = Field(default=None, ge=1)
    #: Most milliseconds a batch waits to fill after its oldest request (default: the task
    #: type's, else 5).
    batch_max_wait_ms: float | None = Field(default=None, ge=0.0)

    @field_validator("task")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @model_validator(mode="after")
    def _staleness_spans_polls(self) -> ServeSettings:
        if self.reload_interval > 0 and 0 < self.max_staleness < 2 * self.reload_interval:
            raise ValueError(
                f"MLPLUG_MAX_STALENESS ({self.max_staleness:g} s) must be at least twice "
                f"MLPLUG_RELOAD_INTERVAL ({self.reload_interval:g} s), or 0 to turn the check off"
            )
        return self

    @property
    def staleness_limit(self) -> float | None:
        """Seconds after which the model or keys count as stale; None when nothing polls."""
        if self.reload_interval <= 0 or self.max_staleness <= 0:
            return None
        return self.max_staleness


def get_serve_settings(**overrides: object) -> ServeSettings:
    """Read the settings now (never cached); ``overrides`` win over the environment. A value
    the server cannot use is a :class:`SettingsError` naming the variable."""
    try:
        return ServeSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise settings_error(exc) from None
