"""What every mlplug flow run shares: the store it uses (logged first), the retry policy of
steps that touch the store, and failing cleanly on expected errors.

An error mlplug raises on purpose (:class:`~mlplug.errors.MlplugError`: bad data, bad
options, an unknown task, a store that refuses) ends the flow run in a Failed state whose
message is the error's own message, and is logged as one line, without a traceback; a
traceback is kept for what is a bug. ``MLPLUG_DEBUG=true`` keeps every traceback.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
from collections.abc import Callable
from typing import Any, TypeVar

from mlplug.errors import MlplugError, StoreUnavailableError
from mlplug.registry import Registry
from mlplug.runtime import check_run_store, choose_store, open_registry

F = TypeVar("F", bound=Callable[..., Any])


def _retry_when_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry a step when the store was unreachable or something unexpected broke; an
    expected error (bad data, a lost compare-and-swap) fails the same way every time."""
    exc = state.data if isinstance(state.data, BaseException) else None
    return not isinstance(exc, MlplugError) or isinstance(exc, StoreUnavailableError)


#: Prefect task options of every step that reads or writes the store: a store that stays
#: unreachable after the client's own retries gets three more chances over 15 s.
STORE_RETRIES: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": [1, 4, 10],
    "retry_condition_fn": _retry_when_transient,
}


def open_run_registry(url: str | None = None) -> Registry:
    """The registry a flow run uses: the store checked against
    :func:`mlplug.runtime.check_run_store` and logged first, so that every run says where
    it reads and writes."""
    from prefect import get_run_logger

    choice = choose_store(url)
    get_run_logger().info("store: %s", choice.describe())
    check_run_store(choice)
    return open_registry(choice.url)


def debugging() -> bool:
    return os.environ.get("MLPLUG_DEBUG", "").lower() in ("1", "true", "yes")


class _NoTracebackForExpectedErrors(logging.Filter):
    """Drops the traceback of a log record about an expected error; the message stays."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, MlplugError):
            record.exc_info, record.exc_text = None, None
        return True


_FILTER = _NoTracebackForExpectedErrors()


def quiet_expected_errors() -> None:
    """Install the filter on the handlers Prefect logs runs through (idempotent)."""
    if debugging():
        return
    for name in ("", "prefect", "prefect.flow_runs", "prefect.task_runs"):
        for handler in logging.getLogger(name).handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)


def fails_cleanly(fn: F) -> F:
    """Make a flow function end in ``Failed(message=<the error's message>)`` on an expected
    error, without a traceback. Calling the flow still raises the error itself.

    The wrapper keeps ``fn``'s signature and docstring (Prefect reads both) without
    ``__wrapped__``, so Prefect binds parameters to the wrapper as it would to ``fn``."""

    def run(*args: Any, **kwargs: Any) -> Any:
        from prefect.states import Failed

        quiet_expected_errors()
        try:
            return fn(*args, **kwargs)
        except MlplugError as exc:
            if debugging():
                raise
            return Failed(message=str(exc), data=exc)  # Prefect logs it as the run's final state

    functools.update_wrapper(run, fn, updated=())
    del run.__wrapped__
    run.__signature__ = inspect.signature(fn)  # type: ignore[attr-defined]
    return run  # type: ignore[return-value]
