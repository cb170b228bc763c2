"""Environment: where the model was trained, or where the monitor run ran. Interpreter, OS and
hardware, the versions of the dependencies that matter and of every plugin, the git commit,
and ``pip check``."""

from __future__ import annotations

import platform
import sys
from typing import Any

from mlplug.environment import packages
from mlplug.reporting import doctor, html
from mlplug.reporting import format as fmt
from mlplug.reporting.context import ReportContext
from mlplug.reporting.html import Html
from mlplug.reporting.section import ReportSection, ReportTable, SectionOutput


class EnvironmentSection(ReportSection):
    name = "environment"
    title = "Environment"
    order = 50
    applies_to = frozenset({"train", "refit", "monitor"})

    def render(self, ctx: ReportContext) -> SectionOutput | None:
        env = ctx.environment
        if not env:
            return SectionOutput(
                [html.note("No environment snapshot is stored for this version.", "warning")]
            )
        installed: dict[str, str] = env.get("packages") or {}
        blocks: list[Html] = [
            html.paragraph(f"Facts {ctx.environment_source or 'of the run'}.".replace("Facts .", "Facts.")),
            html.facts(
                [
                    ("Python", f"{env.get('python')} ({env.get('implementation', '')})"),
                    ("OS / platform", env.get("platform")),
                    ("machine", env.get("machine")),
                    ("CPUs", env.get("cpu_count")),
                    ("memory", fmt.size_bytes(env.get("memory_bytes"))),
                    ("git commit", env.get("git_commit") or "not in a git checkout"),
                    ("mlplug", installed.get("mlplug")),
                    ("installed distributions", len(installed)),
                ]
            ),
        ]
        keys = doctor.key_packages(ctx.plugins, installed)
        check = ctx.pip_check or doctor.pip_check_once()
        involved = check.involved() if check else set()
        blocks.append(html.heading("Dependencies that matter"))
        blocks.append(
            html.paragraph("The requirements of mlplug and of every plugin distribution, as installed.")
        )
        dep_rows = [
            {
                "package": k.name,
                "installed": k.installed or "missing",
                "required": k.spec or "any",
                "needed by": ", ".join(k.needed_by),
                "status": _status(k, involved),
            }
            for k in keys
        ]
        blocks.append(html.table(dep_rows, highlight=[r["status"] != "ok" for r in dep_rows]))
        blocks.append(html.heading("Plugins"))
        blocks.append(html.table(_plugin_rows(ctx, installed)))
        blocks.append(html.heading("pip check"))
        blocks.append(_pip_block(check))
        blocks += _drift_blocks(ctx, installed, keys)
        problems = [r for r in dep_rows if r["status"] != "ok"]
        pip_text = _pip_summary(check)
        summary = [
            f"environment: Python {env.get('python')} on {env.get('platform')}; {pip_text}"
            + (f"; {len(problems)} key dependencies flagged" if problems else "")
        ]
        table = ReportTable(
            "dependencies",
            f"{ctx.task} key dependencies",
            [{k: fmt.json_value(v) for k, v in r.items()} for r in dep_rows],
        )
        return SectionOutput(blocks, summary=summary, tables=[table])


def _status(key: doctor.KeyPackage, involved: set[str]) -> str:
    if key.installed is None:
        return "missing"
    if key.satisfied is False:
        return "does not satisfy the requirement"
    if key.name in involved:
        return "named by pip check"
    return "ok"


def _plugin_rows(ctx: ReportContext, installed: dict[str, str]) -> list[dict[str, Any]]:
    rows = []
    for info in ctx.plugins:
        recorded = installed.get(doctor.normalize(info.distribution)) if info.distribution else None
        row = {
            "plugin": info.name,
            "distribution": "builtin" if info.builtin else (info.distribution or "—"),
            "version": info.version or ("(mlplug)" if info.builtin else "—"),
            "version at training": recorded or "—",
            "task types": ", ".join(info.tasks) or "—",
            "hooks": ", ".join(info.hooks),
        }
        if ctx.kind == "monitor":  # no training here: the snapshot is of this very process
            del row["version at training"]
        rows.append(row)
    return rows


def _pip_summary(check: doctor.PipCheck | None) -> str:
    if check is None:
        return "pip check not run"
    if check.error:
        return f"pip check could not run ({check.error})"
    return "pip check OK" if check.ok else f"pip check: {len(check.problems)} conflict(s)"


def _pip_block(check: doctor.PipCheck | None) -> Html:
    if check is None:
        return html.note("pip check was not run.", "info")
    where = f"Run with Python {platform.python_version()} at {sys.executable}."
    if check.error:
        return html.note(f"pip check could not run: {check.error}. {where}", "warning")
    if check.ok:
        return html.note(f"No broken requirements. {where}", "ok")
    return html.note(
        html.join(
            [
                html.strong(f"{len(check.problems)} dependency conflict(s) found. {where}"),
                html.bullet_list(check.problems),
            ]
        ),
        "warning",
    )


def _drift_blocks(ctx: ReportContext, recorded: dict[str, str], keys: list[doctor.KeyPackage]) -> list[Html]:
    """When a report is regenerated elsewhere, say which key versions differ from training."""
    if not ctx.regenerated:
        return []
    now = {doctor.normalize(k): v for k, v in packages().items()}
    changed = [
        {"package": k.name, "at training": k.installed or "missing", "now": now.get(k.name, "missing")}
        for k in keys
        if now.get(k.name) != k.installed
    ]
    python_now = sys.version.split()[0]
    if not changed and python_now == ctx.environment.get("python"):
        return []
    blocks = [html.heading("This environment differs from training")]
    if python_now != ctx.environment.get("python"):
        blocks.append(
            html.paragraph(f"Python now: {python_now}; at training: {ctx.environment.get('python')}.")
        )
    if changed:
        blocks.append(html.table(changed))
    return blocks
