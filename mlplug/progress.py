"""How far along long work is: tuning trials, fine-tuning steps, profile merges.

A :class:`Progress` shows one piece of work in two places, and floods neither:

- the terminal (standard error): one line rewritten in place when it is a terminal, else a
  line at each quarter of the work (at most four); work done within :data:`TERMINAL_DELAY`
  seconds shows nothing there;
- a Prefect progress artifact (``<key>``, 0 to 100 %) when it runs inside a flow or task run,
  updated at most every :data:`ARTIFACT_INTERVAL` seconds and always at the end.

Nothing goes to the run's logs. Work that never reports shows nothing. Failures to update
the artifact are logged once and never fail the work.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO
from uuid import UUID

log = logging.getLogger(__name__)

#: Seconds between two artifact updates (each is one API call).
ARTIFACT_INTERVAL = 2.0
#: Seconds between two rewrites of the terminal line.
TERMINAL_INTERVAL = 0.2
#: Seconds of work before the terminal shows any: quick work needs no progress line.
TERMINAL_DELAY = 1.0
#: Shares of the work at which a non-terminal stream gets a line.
MILESTONES = (0.25, 0.5, 0.75, 1.0)


class Progress:
    """Progress of one piece of work. ``update(done, total, detail)`` as it goes; ``finish()``
    when it is complete (shows 100 %).

    ``title`` starts every line ("tuning <task>"), ``unit`` names what is counted ("trials");
    ``key`` names the Prefect artifact (lower-case letters, digits and dashes; the UI shows the
    latest artifact of a key first).
    """

    def __init__(
        self,
        title: str,
        key: str,
        unit: str = "",
        *,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        delay: float = TERMINAL_DELAY,
    ) -> None:
        self.title = title
        self.key = key
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.delay = delay
        self._started = clock()
        self._shown = False
        self.done = 0
        self.total = 0
        self.detail = ""
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._drawn = 0.0
        self._milestone = 0
        self._line_open = False
        self._artifact: UUID | None = None
        self._artifact_at = 0.0
        self._artifact_failed = False
        self._finished = False

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total > 0 else 0.0

    def line(self) -> str:
        percent = f"{self.fraction:4.0%}" if self.total else "  ?%"
        unit = f" {self.unit}" if self.unit else ""
        detail = f", {self.detail}" if self.detail else ""
        return f"{self.title}: {percent} ({self.done}/{self.total}{unit}{detail})"

    def update(self, done: int, total: int, detail: str = "") -> None:
        if self._finished:
            return
        self.done, self.total, self.detail = int(done), int(total), detail
        now = self.clock()
        self._terminal(now, final=False)
        if self._artifact is None or now - self._artifact_at >= ARTIFACT_INTERVAL:
            self._publish(now)

    def finish(self, detail: str | None = None) -> None:
        """Mark the work complete: the line and the artifact show 100 %."""
        if self._finished or (self.total == 0 and self.done == 0 and detail is None):
            return  # nothing was ever reported: nothing to close
        self.done = self.total = max(self.total, self.done, 1)
        if detail is not None:
            self.detail = detail
        now = self.clock()
        self._terminal(now, final=True)
        self._publish(now)
        self._finished = True

    def __getstate__(self) -> dict[str, Any]:
        # Ray Tune pickles its callbacks with the experiment state (for resuming): streams do
        # not pickle, and a resumed copy writes to the standard error of its own process.
        return {**self.__dict__, "stream": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.stream is None:
            self.stream = sys.stderr

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self.finish()
        elif self._line_open:  # leave the last state on screen, end the line
            self.stream.write("\n")
            self.stream.flush()

    # -- terminal --------------------------------------------------------------------------

    def _terminal(self, now: float, final: bool) -> None:
        if not self._shown and now - self._started < self.delay:
            return
        self._shown = True
        if self._tty:
            if final or now - self._drawn >= TERMINAL_INTERVAL:
                self.stream.write("\r" + self.line() + "\x1b[K" + ("\n" if final else ""))
                self.stream.flush()
                self._drawn, self._line_open = now, not final
            return
        reached = sum(1 for m in MILESTONES if self.fraction >= m)
        if reached > self._milestone:
            self._milestone = reached
            self.stream.write(self.line() + "\n")
            self.stream.flush()

    # -- Prefect artifact ------------------------------------------------------------------

    def _publish(self, now: float) -> None:
        if self._artifact_failed or not _in_prefect_run():
            return
        from prefect.artifacts import create_progress_artifact, update_progress_artifact

        percent = round(100 * self.fraction, 1)
        description = self.line()
        try:
            if self._artifact is None:
                self._artifact = create_progress_artifact(
                    percent, key=self.key, description=description, _sync=True
                )
            else:
                update_progress_artifact(self._artifact, percent, description=description, _sync=True)
        except Exception as exc:  # progress is a courtesy; the work goes on without it
            self._artifact_failed = True
            log.warning("progress artifact %r not updated: %s", self.key, exc)
        self._artifact_at = now


def _in_prefect_run() -> bool:
    try:
        from prefect.context import FlowRunContext, TaskRunContext
    except ImportError:  # pragma: no cover - prefect is a dependency
        return False
    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def artifact_key(*parts: str) -> str:
    """A Prefect artifact key from names: lower case, dashes for anything else."""
    text = "-".join(parts).lower()
    return "".join(c if c.isalnum() and c.isascii() else "-" for c in text).strip("-")
