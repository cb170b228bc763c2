"""Automatic reports: one self-contained HTML document per run, plus a markdown summary and
tables for Prefect artifacts.

Sections are plugins (``register_report_sections``); :func:`build_report` renders those
that apply to a :class:`ReportContext`. The train flow builds the context with
:meth:`ReportContext.from_training` from what it holds in memory; ``mlplug report``
rebuilds the context from the store.

Importing this package is cheap: matplotlib and sklearn load when a section draws.
"""

from __future__ import annotations

from mlplug.reporting.build import REPORT_FILE, RenderedSection, Report, build_report
from mlplug.reporting.context import ReportContext
from mlplug.reporting.section import REPORT_KINDS, ReportSection, ReportTable, SectionOutput

__all__ = [
    "REPORT_FILE",
    "REPORT_KINDS",
    "RenderedSection",
    "Report",
    "ReportContext",
    "ReportSection",
    "ReportTable",
    "SectionOutput",
    "build_report",
    "publish_artifacts",
]


def publish_artifacts(report: Report, *, key: str, link: str | None = None) -> None:
    """Create the Prefect artifacts of a report in the current flow run: the markdown
    summary (``<key>-<kind>-report``), one table per report table (``<key>-metrics``,
    ``<key>-trials``, ``<key>-dependencies``) and, given ``link`` (where ``report.html``
    is stored), a link artifact (``<key>-<kind>-report-link``).

    ``key`` prefixes every artifact key: lower case letters, digits and dashes.
    """
    from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

    create_markdown_artifact(
        key=f"{key}-{report.kind}-report", markdown=report.markdown, description=report.title
    )
    for table in report.tables:
        create_table_artifact(key=f"{key}-{table.name}", table=table.rows, description=table.description)
    if link:
        create_link_artifact(
            key=f"{key}-{report.kind}-report-link",
            link=link,
            link_text="HTML report",
            description=report.title,
        )
