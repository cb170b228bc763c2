"""Assemble a report from the registered sections: one HTML document, a markdown summary
and tables for Prefect artifacts."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import mlplug
from mlplug.reporting import html
from mlplug.reporting.section import ReportSection, ReportTable, SectionOutput

if TYPE_CHECKING:
    from mlplug.plugins import Plugins
    from mlplug.reporting.context import ReportContext

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RenderedSection:
    name: str
    title: str
    plugin: str
    seconds: float
    output: SectionOutput | None = None
    #: ``"ExcType: message"`` when the section raised; the report shows an error box.
    error: str | None = None


@dataclass(frozen=True)
class Report:
    title: str
    #: The report kind (``train``, ``refit``, ``monitor``) of its context.
    kind: str
    #: One self-contained HTML document (inline CSS, ``data:`` images, no external links).
    html: str
    #: A short summary for a Prefect markdown artifact.
    markdown: str
    #: Rows for Prefect table artifacts.
    tables: list[ReportTable] = field(default_factory=list)
    sections: list[RenderedSection] = field(default_factory=list)
    seconds: float = 0.0

    def section(self, name: str) -> RenderedSection:
        for s in self.sections:
            if s.name == name:
                return s
        raise KeyError(f"report has no section {name!r}; sections: {[s.name for s in self.sections]}")

    @property
    def failed(self) -> list[RenderedSection]:
        return [s for s in self.sections if s.error is not None]


def applicable_sections(ctx: ReportContext, plugins: Plugins) -> list[tuple[str, ReportSection]]:
    """(plugin, section) pairs that render for ``ctx.kind``, in report order."""
    regs = plugins.report_sections().values()
    chosen = [(r.plugin, r.value) for r in regs if ctx.kind in r.value.applies_to]
    return sorted(chosen, key=lambda ps: (ps[1].order, ps[1].name))


def build_report(ctx: ReportContext, plugins: Plugins | None = None, *, link: str | None = None) -> Report:
    """Render every applicable section; a section that raises becomes an error box.

    ``plugins`` defaults to the process-wide manager. ``link`` (where the HTML report will
    be stored) is added to the markdown summary.
    """
    if plugins is None:
        from mlplug.plugins import get_plugins

        plugins = get_plugins()
    started = time.perf_counter()
    rendered: list[RenderedSection] = []
    for plugin, section in applicable_sections(ctx, plugins):
        t0 = time.perf_counter()
        try:
            output = section.render(ctx)
            if output is not None and not isinstance(output, SectionOutput):
                raise TypeError(f"render() must return SectionOutput or None, got {type(output).__name__}")
        except Exception as exc:  # one broken section must not cost the whole report
            log.exception("report section %r of plugin %r failed", section.name, plugin)
            body = html.error_box(section.title, plugin, exc)
            rendered.append(
                RenderedSection(
                    section.name,
                    section.title,
                    plugin,
                    time.perf_counter() - t0,
                    SectionOutput([body]),
                    error=f"{type(exc).__name__}: {exc}",
                )
            )
            continue
        if output is not None:
            rendered.append(
                RenderedSection(section.name, section.title, plugin, time.perf_counter() - t0, output)
            )
    seconds = time.perf_counter() - started
    return Report(
        title=ctx.title,
        kind=ctx.kind,
        html=_document(ctx, rendered, seconds),
        markdown=_markdown(ctx, rendered, link),
        tables=[t for s in rendered if s.output and not s.error for t in s.output.tables],
        sections=rendered,
        seconds=seconds,
    )


def _document(ctx: ReportContext, rendered: list[RenderedSection], seconds: float) -> str:
    subtitle = [f"task type {ctx.task}: {ctx.task_type.description}".rstrip(": ")]
    if ctx.version is not None:
        subtitle.append(
            f"version {ctx.version.version} ({ctx.version.kind}), registered {ctx.version.created_at}"
        )
    elif ctx.candidate_kind:
        subtitle.append(f"candidate: {ctx.candidate_kind}, stored with the version this run registers")
    if ctx.dataset_hash:
        subtitle.append(f"dataset {ctx.dataset_hash[:12]}")
    sections = [
        html.DocumentSection(f"section-{s.name}", s.title, html.join(s.output.blocks if s.output else []))
        for s in rendered
    ]
    # Not "section-...": that prefix belongs to registered sections, whose names are free.
    if ctx.notes:
        notes = html.note(html.bullet_list(ctx.notes), "warning")
        sections.insert(0, html.DocumentSection("report-notes", "Notes", notes))
    if ctx.trigger:
        sections.insert(
            0, html.DocumentSection("report-trigger", _trigger_title(ctx), html.note(ctx.trigger))
        )
    now = datetime.now(UTC).isoformat(timespec="seconds")
    footer = (
        f"Generated by mlplug {mlplug.__version__} at {now} in {seconds:.1f} s. "
        "Every image is embedded; this file opens offline."
    )
    return html.document(ctx.title, subtitle, sections, footer)


def _trigger_title(ctx: ReportContext) -> str:
    return "Why this refit" if ctx.kind == "refit" else "Why this run"


def _markdown(ctx: ReportContext, rendered: list[RenderedSection], link: str | None) -> str:
    lines = [f"# {ctx.title}", ""]
    if ctx.trigger:
        lines.append(f"- {_trigger_title(ctx).lower()}: {ctx.trigger}")
    for s in rendered:
        if s.error:
            lines.append(f"- **{s.title}: section failed** ({s.error})")
        elif s.output:
            lines.extend(f"- {line}" for line in s.output.summary)
    lines.extend(f"- note: {n}" for n in ctx.notes)
    if link:
        lines += ["", f"Full report: `{link}`"]
    return "\n".join(lines) + "\n"
