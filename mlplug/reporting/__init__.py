"""Automatic reports: one self-contained HTML document per run, plus a markdown summary and
tables for Prefect artifacts.

Sections are plugins (``register_report_sections``); :func:`build_report` renders those
that apply to a :class:`ReportContext`. The train flow builds the context with
:meth:`ReportContext.from_training` from what it holds in memory; ``mlplug report``
rebuilds the context from the store.

Importing this package is cheap: matplotlib and sklearn load when a section draws.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlplug.reporting.build import RenderedSection, Report, build_report
from mlplug.reporting.context import ReportContext
from mlplug.reporting.section import REPORT_KINDS, ReportSection, ReportTable, SectionOutput

if TYPE_CHECKING:
    from mlplug.storage.base import Store

__all__ = [
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


def publish_artifacts(report: Report, *, key: str, store: Store | None = None, report_key: str = "") -> None:
    """Create the Prefect artifacts of a report in the current flow run: the markdown
    summary (``<key>-<kind>-report``), one table per report table (``<key>-metrics``,
    ``<key>-trials``, ``<key>-dependencies``) and, given the ``store`` and the
    ``report_key`` where ``report.html`` is stored, a link artifact
    (``<key>-<kind>-report-link``) that opens it in a browser: a presigned HTTPS URL that
    expires after ``MLPLUG_REPORT_LINK_SECONDS`` on S3, the file's URL on ``file://``.

    ``key`` prefixes every artifact key: lower case letters, digits and dashes.
    """
    from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

    from mlplug.settings import get_settings

    markdown = report.markdown
    if store is not None and report_key:
        markdown += f"\nStored at `{store.uri(report_key)}` (store `{store.url}`).\n"
    create_markdown_artifact(key=f"{key}-{report.kind}-report", markdown=markdown, description=report.title)
    for table in report.tables:
        create_table_artifact(key=f"{key}-{table.name}", table=table.rows, description=table.description)
    if store is not None and report_key:
        seconds = get_settings().report_link_seconds
        link = store.link(report_key, seconds)
        signed = link != store.uri(report_key)
        create_link_artifact(
            key=f"{key}-{report.kind}-report-link",
            link=link,
            link_text="HTML report",
            description=(
                f"{report.title}; the link expires in {seconds / 3600:g} h (MLPLUG_REPORT_LINK_SECONDS)"
                if signed
                else f"{report.title}; a file on the store's machine: paste the link into its browser"
            ),
        )
