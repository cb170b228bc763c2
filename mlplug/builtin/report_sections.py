"""Builtin plugin: the report sections every run gets (data, performance, experiments,
business value and environment for training and refit runs; drift and environment for
monitor runs). Registered through ``register_report_sections`` exactly like a
plugin's own section, so a plugin can be read against them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from mlplug import hookimpl

if TYPE_CHECKING:
    from mlplug.reporting.section import ReportSection


@hookimpl
def register_report_sections(register: Callable[[ReportSection], None]) -> None:
    # Sections import pandas, sklearn and (when drawing) matplotlib; the imports wait
    # until a report is built, so loading plugins stays cheap.
    from mlplug.reporting.sections.business import BusinessSection
    from mlplug.reporting.sections.drift import DriftSection
    from mlplug.reporting.sections.eda import DataSection
    from mlplug.reporting.sections.environment import EnvironmentSection
    from mlplug.reporting.sections.experiments import ExperimentsSection
    from mlplug.reporting.sections.performance import PerformanceSection

    for section in (
        DataSection(),
        PerformanceSection(),
        ExperimentsSection(),
        BusinessSection(),
        EnvironmentSection(),
        DriftSection(),
    ):
        register(section)
