"""Experiments: the Ray Tune trials of this run and how this version compares with the
task's earlier versions."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mlplug.reporting import format as fmt
from mlplug.reporting import html, plots
from mlplug.reporting.context import ReportContext
from mlplug.reporting.html import Html
from mlplug.reporting.section import ReportSection, ReportTable, SectionOutput
from mlplug.tuning import node_label

#: Trials listed in full; tuning runs with more are summarised and truncated.
MAX_TRIAL_ROWS = 200
MAX_VERSION_ROWS = 50


class ExperimentsSection(ReportSection):
    name = "experiments"
    title = "Experiments"
    order = 30

    def render(self, ctx: ReportContext) -> SectionOutput | None:
        blocks: list[Html] = [html.heading("Hyperparameter search")]
        tables: list[ReportTable] = []
        summary: list[str] = []
        if not ctx.trials:
            blocks.append(
                html.note(
                    "Tuning was off for this run (0 trials): the registered "
                    f"{ctx.candidate_kind or 'model'} used the parameters below.",
                    "info",
                )
            )
            summary.append("tuning: off (default parameters)")
        else:
            trial_blocks, rows = _trial_blocks(ctx)
            blocks += trial_blocks
            tables.append(ReportTable("trials", f"{ctx.task} Ray Tune trials", rows))
            scored = [t for t in ctx.trials if _score(t) is not None]
            best = max((_score(t) or -math.inf for t in scored), default=None)
            summary.append(f"tuning: {len(ctx.trials)} trials, best validation score {fmt.number(best)}")
        blocks.append(html.heading("Parameters of the registered candidate"))
        blocks.append(
            html.facts({k: fmt.plain(v) for k, v in ctx.params.items()})
            if ctx.params
            else html.paragraph(f"The {ctx.candidate_kind or 'candidate'} has no parameters.")
        )
        blocks += _history_blocks(ctx)
        return SectionOutput(blocks, summary=summary, tables=tables)


def _score(trial: dict[str, Any]) -> float | None:
    score = trial.get("score")
    if isinstance(score, int | float) and math.isfinite(score):
        return float(score)
    return None


def _trial_blocks(ctx: ReportContext) -> tuple[list[Html], list[dict[str, Any]]]:
    from matplotlib.ticker import MaxNLocator

    trials = ctx.trials
    stopped = sum(1 for t in trials if t.get("stopped_early"))
    failed = [t for t in trials if t.get("error")]
    scores = [_score(t) for t in trials]
    nodes = [node_label(t.get("host"), t.get("node_id")) for t in trials]
    best_i = max(
        (i for i, s in enumerate(scores) if s is not None), key=lambda i: scores[i] or -math.inf, default=None
    )
    blocks: list[Html] = [
        html.facts(
            [
                ("trials", len(trials)),
                ("stopped early by ASHA", stopped),
                ("failed", len(failed)),
                ("tuning time", fmt.seconds(ctx.tuning_seconds)),
                ("Ray nodes", _nodes_fact(nodes)),
                ("best validation score", scores[best_i] if best_i is not None else None),
            ]
        )
    ]
    if best_i is not None:
        best = trials[best_i]
        blocks.append(html.heading("Best configuration", 4))
        blocks.append(html.facts({k: fmt.plain(v) for k, v in (best.get("params") or {}).items()}))
    # Scores are what tuning maximised: the primary validation metric, negated when lower is better.
    fig, (ax,) = plots.new_figure(width=7.0, height=3.6)
    order = np.arange(1, len(trials) + 1)
    y = np.array([np.nan if s is None else s for s in scores], dtype=np.float64)
    early = np.array([bool(t.get("stopped_early")) for t in trials])
    ax.scatter(order[~early], y[~early], color=plots.COLORS[0], label="ran to the end", zorder=3)
    ax.scatter(order[early], y[early], color=plots.COLORS[1], marker="x", label="stopped early", zorder=3)
    running = np.fmax.accumulate(np.where(np.isnan(y), -np.inf, y))
    running[np.isinf(running)] = np.nan
    ax.step(order, running, where="post", color=plots.COLORS[2], label="best so far")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    plots.style(
        ax,
        "Validation score over trials",
        "trial (in the order Ray Tune reported them)",
        "validation score (higher is better)",
    )
    ax.legend(fontsize=8)
    blocks.append(html.gallery([html.figure(plots.image(fig, "validation score over trials"))]))
    param_names = list(dict.fromkeys(k for t in trials for k in (t.get("params") or {})))
    rows = []
    ranked = sorted(range(len(trials)), key=lambda i: -(scores[i] if scores[i] is not None else -math.inf))
    for i in ranked:
        t = trials[i]
        rows.append(
            {
                "trial": t.get("trial_id") or str(i + 1),
                "score": scores[i],
                "steps": t.get("steps"),
                "seconds": t.get("seconds"),
                "stopped early": bool(t.get("stopped_early")),
                "node": nodes[i] or "",
                "error": (t.get("error") or "")[:200],
                **{p: fmt.plain((t.get("params") or {}).get(p)) for p in param_names},
            }
        )
    shown = rows[:MAX_TRIAL_ROWS]
    more = f" (best {len(shown)} of {len(rows)})" if len(rows) > len(shown) else ""
    blocks.append(
        html.details(
            f"all trials, best first{more}",
            html.table(shown, highlight=[r is rows[0] for r in shown]),
        )
    )
    table_rows = [{k: fmt.json_value(v) for k, v in r.items()} for r in shown]
    return blocks, table_rows


def _nodes_fact(nodes: list[str | None]) -> str:
    """How many nodes the trials ran on and how many trials each, busiest first."""
    known = [n for n in nodes if n]
    if not known:
        return "not recorded"
    counts = sorted({n: known.count(n) for n in known}.items(), key=lambda kv: -kv[1])
    listed = ", ".join(f"{n}: {c} trial{'s' if c > 1 else ''}" for n, c in counts)
    return f"{len(counts)} ({listed})"


def _history_blocks(ctx: ReportContext) -> list[Html]:
    blocks: list[Html] = [html.heading("Earlier versions of this task")]
    history = ctx.history[-MAX_VERSION_ROWS:]
    if not history:
        blocks.append(html.paragraph("This is the first version of the task."))
        return blocks
    primary = ctx.holdout.primary if ctx.holdout else history[-1].primary_metric
    rows: list[dict[str, Any]] = []
    for mv in history:
        rows.append(
            {
                "version": f"v{mv.version}",
                "registered": mv.created_at[:19].replace("T", " "),
                "kind": mv.kind,
                primary: mv.metrics.get(primary),
                "dataset": mv.dataset_hash[:12],
                "holdout rows": (mv.info.get("rows") or {}).get("holdout"),
                "champion now": "yes" if mv.version == ctx.current_champion else "",
            }
        )
    this_label = f"v{ctx.version.version}" if ctx.version else "this run"
    if ctx.holdout is not None:
        rows.append(
            {
                "version": this_label,
                "registered": (ctx.version.created_at if ctx.version else ctx.created_at)[:19].replace(
                    "T", " "
                ),
                "kind": ctx.candidate_kind,
                primary: ctx.holdout.values.get(primary),
                "dataset": (ctx.dataset_hash or "")[:12],
                "holdout rows": ctx.split_rows.get("holdout"),
                "champion now": "yes" if ctx.version and ctx.version.version == ctx.current_champion else "",
            }
        )
    blocks.append(
        html.paragraph(
            f"{primary} of each version on its own holdout; versions trained on different data "
            "were scored on different rows, so compare with care."
        )
    )
    blocks.append(html.table(rows, highlight=[i == len(rows) - 1 for i in range(len(rows))]))
    fig, (ax,) = plots.new_figure(width=7.0, height=3.4)
    labels = [str(r["version"]) for r in rows]
    values = np.array([np.nan if r[primary] is None else r[primary] for r in rows], dtype=np.float64)
    ax.plot(range(len(rows)), values, marker="o", color=plots.COLORS[0])
    ax.scatter([len(rows) - 1], [values[-1]], s=90, color=plots.COLORS[1], zorder=3, label="this version")
    ax.set_xticks(range(len(rows)), labels)
    plots.style(ax, f"{primary} by version (holdout of each run)", "version", primary)
    ax.legend(fontsize=8)
    blocks.append(html.gallery([html.figure(plots.image(fig, "score by version"))]))
    return blocks
