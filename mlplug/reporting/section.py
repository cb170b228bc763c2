"""What a report section is: the typed object plugins hand to ``register_report_sections``.

A section turns a :class:`~mlplug.reporting.context.ReportContext` into HTML blocks, a few
summary lines for the Prefect markdown artifact and optional tables for Prefect table
artifacts. The builtin sections (data, performance, experiments, business value,
environment; drift for monitor reports) are registered through the same hook as a
third-party one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from mlplug.reporting.html import Html

if TYPE_CHECKING:
    from mlplug.reporting.context import ReportContext

#: The runs that produce a report. A section lists the ones it renders for in ``applies_to``.
REPORT_KINDS = frozenset({"train", "refit", "monitor"})


@dataclass(frozen=True)
class ReportTable:
    """Rows for a Prefect table artifact. ``name`` becomes part of the artifact key, so it
    is lower case with dashes; values are plain JSON (numbers already rounded)."""

    name: str
    description: str
    rows: list[dict[str, Any]]


@dataclass(frozen=True)
class SectionOutput:
    """What a section rendered.

    ``blocks`` are HTML fragments built with :mod:`mlplug.reporting.html` and
    :mod:`mlplug.reporting.plots` (escaped text, tables, embedded images). ``summary`` holds
    short markdown lines for the run's Prefect markdown artifact; ``tables`` feed Prefect
    table artifacts.
    """

    blocks: list[Html]
    summary: list[str] = field(default_factory=list)
    tables: list[ReportTable] = field(default_factory=list)


class ReportSection(ABC):
    """Base class for report sections. Class attributes describe it; ``render`` does the work.

    ``render`` returns ``None`` when the section has nothing to say for this context (a
    task plugin's section seeing another task's run, a binary-only analysis on a multi-class
    task); the section is then left out of the report. An exception does not stop the
    report: the section is replaced by an error box naming it, and the error is logged.
    """

    #: Unique name, also the HTML anchor (``#section-<name>``). ``[a-z][a-z0-9_-]*``.
    name: ClassVar[str]
    #: Heading shown in the report and its table of contents.
    title: ClassVar[str]
    #: Position: lower comes first. Builtins use 10 (data; drift in monitor reports),
    #: 20 (performance), 30 (experiments), 40 (business value), 50 (environment).
    order: ClassVar[int] = 100
    #: Report kinds the section renders for; see ``REPORT_KINDS``.
    applies_to: ClassVar[frozenset[str]] = frozenset({"train", "refit"})

    @abstractmethod
    def render(self, ctx: ReportContext) -> SectionOutput | None:
        """HTML blocks for this run, or ``None`` to leave the section out."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
