"""Readiness and draining: SIGTERM turns readiness off before uvicorn's graceful shutdown.

On SIGTERM uvicorn stops accepting connections, lets in-flight requests finish (up to its
``timeout_graceful_shutdown``) and then exits. The server chains a handler in front of
uvicorn's so that ``/readyz`` answers 503 from the first moment of that drain; in
Kubernetes the preStop sleep before SIGTERM gives the endpoints controller time to stop
sending new traffic as well.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)

DRAIN_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Lifecycle:
    def __init__(self, on_change: Callable[[bool], None] | None = None) -> None:
        self.draining = False
        self._on_change = on_change
        self._previous: dict[int, Any] = {}

    def start_draining(self, reason: str = "") -> None:
        if not self.draining:
            self.draining = True
            log.info(
                "draining%s: readiness is now false; finishing in-flight requests",
                f" ({reason})" if reason else "",
            )
            if self._on_change is not None:
                self._on_change(False)

    def install_signal_handlers(self) -> None:
        """Chain in front of the current SIGTERM/SIGINT handlers (uvicorn's, at lifespan start).

        Only the main thread may set handlers; elsewhere (an app run in a test thread) the
        drain starts only through :meth:`start_draining`.
        """
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in DRAIN_SIGNALS:
            previous = signal.getsignal(sig)
            self._previous[sig] = previous

            def handler(signum: int, frame: FrameType | None, _previous: Any = previous) -> None:
                self.start_draining(signal.Signals(signum).name)
                if callable(_previous):
                    _previous(signum, frame)
                elif _previous == signal.SIG_DFL:  # no server handler: behave as if we were not here
                    signal.signal(signum, signal.SIG_DFL)
                    signal.raise_signal(signum)

            signal.signal(sig, handler)

    def restore_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig, previous in self._previous.items():
            if previous is not None:
                signal.signal(sig, previous)
        self._previous.clear()
