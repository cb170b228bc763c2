"""Automatic reports: one self-contained HTML document per run, plus a markdown summary and
tables for Prefect artifacts.

Sections are plugins (``register_report_sections``); :func:`build_report` renders those
that apply to a :class:`ReportContext`. The train flow calls :func:`training_report` with
what it holds in memory; ``mlplug report`` rebuilds the context from the store.

Importing this package is cheap: matplotlib and sklearn load when a section draws.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlplug.reporting.build import REPORT_FILE, RenderedSection, Report, build_report
from mlplug.reporting.context import ReportContext
from mlplug.reporting.section import REPORT_KINDS, ReportSection, ReportTable, SectionOutput

if TYPE_CHECKING:
    import pandas as pd

    from mlplug.dataset import Dataset
    from mlplug.plugins import Plugins
    from mlplug.registry import Registry
    from mlplug.reporting.doctor import PipCheck
    from mlplug.task import BusinessValue, Explanation, Metrics, TaskType
    from mlplug.training import Candidate, ChampionScore, Split
    from mlplug.tuning import TuneResult

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
    "training_report",
]


def training_report(
    *,
    task_type: TaskType,
    dataset: Dataset,
    split: Split,
    registered: Candidate,
    other: Candidate,
    holdout_metrics: Metrics,
    other_metrics: Metrics,
    champion: ChampionScore,
    business_value: BusinessValue,
    explanation: Explanation | None,
    tuned: TuneResult | None,
    predictions: pd.DataFrame | bytes | None,
    registry: Registry | None = None,
    dataset_hash: str | None = None,
    selection: str | None = None,
    decision: str | None = None,
    kind: str = "train",
    pip_check: PipCheck | None = None,
    plugins: Plugins | None = None,
    link: str | None = None,
) -> Report:
    """The report of a training run, from the objects the flow holds, before registering.

    Arguments are those of :meth:`ReportContext.from_training`, plus ``plugins`` (default:
    the process-wide manager) and ``link`` (shown in the markdown summary). A failing
    section becomes an error box; this function does not raise because of one.
    """
    ctx = ReportContext.from_training(
        task_type=task_type,
        dataset=dataset,
        split=split,
        registered=registered,
        other=other,
        holdout_metrics=holdout_metrics,
        other_metrics=other_metrics,
        champion=champion,
        business_value=business_value,
        explanation=explanation,
        tuned=tuned,
        predictions=predictions,
        registry=registry,
        dataset_hash=dataset_hash,
        selection=selection,
        decision=decision,
        kind=kind,
        pip_check=pip_check,
        plugins=plugins,
    )
    return build_report(ctx, plugins, link=link)


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
