"""Peak resident memory of this process and all its children (Ray workers, servers)."""

from __future__ import annotations

import contextlib
import threading

import psutil


class PeakMemory:
    """Samples the RSS of a process tree (by default this process's) every ``interval``
    seconds in a thread."""

    def __init__(self, interval: float = 0.2, pid: int | None = None) -> None:
        self.interval = interval
        self.pid = pid
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            me = psutil.Process(self.pid)
        except psutil.Error:  # already gone
            return
        while not self._stop.is_set():
            try:
                tree = [me, *me.children(recursive=True)]
            except psutil.Error:  # the root exited
                return
            total = 0
            for proc in tree:
                with contextlib.suppress(psutil.Error):  # a child may exit between calls
                    total += proc.memory_info().rss
            self.peak_bytes = max(self.peak_bytes, total)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mib(self) -> float:
        return self.peak_bytes / 2**20

    @property
    def peak_gib(self) -> float:
        return self.peak_bytes / 2**30
