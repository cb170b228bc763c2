"""Drift: whether a version's live traffic still looks like its reference data. The decision
in words, a score per monitored column, and the distributions of the columns that moved,
reference against current traffic."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlplug.monitoring.bounds import EXTREME
from mlplug.monitoring.drift import DRIFT, NO_DRIFT, POSSIBLE_DRIFT, UNKNOWN, out_of_range_words
from mlplug.reporting import format as fmt
from mlplug.reporting import html, plots
from mlplug.reporting.context import ReportContext
from mlplug.reporting.html import Html
from mlplug.reporting.section import ReportSection, ReportTable, SectionOutput

if TYPE_CHECKING:
    from mlplug.monitoring.drift import ColumnDrift, DriftResult

#: Distribution plots drawn at most; the rest of the columns are in the table only.
MAX_PLOTS = 12
#: Columns in the score overview chart.
MAX_SCORE_BARS = 30
#: Bars per categorical plot; rarer values are summed into one bar.
MAX_CATEGORIES = 15
LABEL_CHARS = 22

#: Category: words, badge level, rank (drifted first) and bar colour.
_CATEGORIES = {
    DRIFT: ("drift", "error", 0, "#c0392b"),
    POSSIBLE_DRIFT: ("possible drift", "warning", 1, "#d9822b"),
    NO_DRIFT: ("no drift", "ok", 2, "#2e8b57"),
    UNKNOWN: ("unknown", "info", 3, "#7f8c8d"),
}
REFERENCE_COLOR, CURRENT_COLOR = plots.COLORS[0], plots.COLORS[1]


class DriftSection(ReportSection):
    name = "drift"
    title = "Drift"
    order = 10
    applies_to = frozenset({"monitor"})

    def render(self, ctx: ReportContext) -> SectionOutput | None:
        result = ctx.drift
        if result is None:
            return SectionOutput([html.note("This report holds no drift result.", "warning")])
        columns = sorted(result.columns, key=lambda c: (c.score is None, -(c.score or 0.0), c.name))
        blocks = [
            _verdict(ctx, result),
            _facts(ctx, result),
            *_skipped_profiles(result),
            html.heading("Drift per column"),
            html.paragraph(
                "The Hellinger distance between the reference and the current distribution of each "
                "column: 0 means the same shares in every bin, 1 no overlap at all. Sampling noise is "
                "the distance two samples of these sizes from one distribution typically show; a "
                "column counts as drifted only when its score also clears 2.5 times its noise (2 times "
                "for possible drift). Numeric columns are binned at the reference's deciles, "
                "categorical ones by value; missing values are a bin of their own."
            ),
            _column_table(columns),
        ]
        if any(c.score is not None for c in columns):
            blocks.append(html.gallery([_score_chart(columns, result)]))
        blocks += _distribution_blocks(columns)
        return SectionOutput(blocks, summary=_summary(result), tables=[_table(ctx, columns)])


def category_words(category: str) -> str:
    return _CATEGORIES.get(category, (category.lower(),))[0]


def _badge(category: str) -> Html:
    words, level, _, _ = _CATEGORIES.get(category, (category, "info", 3, ""))
    return html.badge(words, level)


def _no_decision(result: DriftResult) -> bool:
    return result.current_rows < result.thresholds.min_rows


def _verdict(ctx: ReportContext, result: DriftResult) -> Html:
    who = f"v{result.version}"
    if _no_decision(result):
        level = "warning"
        head = (
            f"No decision: {result.current_rows:,} rows of traffic in the window, fewer than the "
            f"{result.thresholds.min_rows:,} a stable comparison needs. The scores below are "
            "indicative only."
        )
    elif result.drifted:
        level = "error"
        head = f"Drift: the traffic {who} answered no longer looks like its reference data."
    else:
        level = "ok"
        head = f"No drift: the traffic {who} answered still looks like its reference data."
    parts = [html.strong(head), html.paragraph(f"Decision: {result.decision}.")]
    if ctx.decision:
        parts.append(html.paragraph(f"Action taken: {ctx.decision}."))
    return html.note(html.join(parts), level)


def _facts(ctx: ReportContext, result: DriftResult) -> Html:
    t = result.thresholds
    scored = [c for c in result.inputs if c.category != UNKNOWN]
    drifted = result.drifted_inputs
    outputs = [c.name for c in result.columns if c.source == "output" and c.category == DRIFT]
    return html.facts(
        [
            ("monitored version", _version_words(ctx, result)),
            ("window", _window(result.window_start, result.window_end)),
            ("current traffic", _traffic_words(result)),
            ("values out of range", _out_of_range_facts(result)),
            (
                "reference",
                f"{result.reference_rows:,} rows (the holdout of v{result.version}'s training run)",
            ),
            (
                "drifted input columns",
                f"{len(drifted)} of {len(scored)} ({fmt.percent(result.share)}); "
                f"the data counts as drifted from {fmt.percent(t.share, 0)} of them, "
                "or when an output drifts",
            ),
            ("drifted outputs", ", ".join(outputs) or "none"),
            (
                "column thresholds",
                f"possible drift from a Hellinger distance of {t.possible:.2f}, drift from "
                f"{t.drift:.2f} (and from 2 and 2.5 times the sampling noise)",
            ),
            ("rows needed for a decision", t.min_rows),
            ("compared at", _when(result.created_at)),
        ]
    )


def _traffic_words(result: DriftResult) -> str:
    words = f"{result.current_rows:,} rows profiled"
    seen = result.seen_rows
    if seen is not None and seen != result.current_rows:
        share = result.current_rows / seen if seen else 0.0
        words += f" of {seen:,} answered ({fmt.percent(share)}, a uniform sample)"
    elif seen is not None:
        words += " (every row answered)"
    words += f", {_count(result.profiles, 'profile')} merged"
    if result.skipped_profiles:
        words += f", {_count(len(result.skipped_profiles), 'profile')} skipped"
    return words


def _out_of_range_facts(result: DriftResult) -> str:
    if not result.out_of_range:
        return f"none (infinite values, and finite ones beyond ±{EXTREME:g}, are counted here)"
    return (
        f"{out_of_range_words(result)}. Counted when the traffic was profiled and clipped to "
        f"±{EXTREME:g} there, so they show in the outer bins"
    )


def _skipped_profiles(result: DriftResult) -> list[Html]:
    if not result.skipped_profiles:
        return []
    merged = result.profiles
    head = (
        f"{_count(len(result.skipped_profiles), 'traffic profile')} of the window "
        f"{'was' if len(result.skipped_profiles) == 1 else 'were'} skipped"
        + (
            ": no profile was usable, so there is nothing to compare."
            if not merged
            else f"; {merged} merged."
        )
    )
    rows = [{"profile": s.key, "why it was skipped": s.reason} for s in result.skipped_profiles]
    return [
        html.note(
            html.join([html.strong(head), html.table(rows, ["profile", "why it was skipped"])]), "warning"
        )
    ]


def _version_words(ctx: ReportContext, result: DriftResult) -> str:
    words = f"v{result.version}"
    if ctx.version is not None and ctx.version.version == result.version:
        words += f" ({ctx.version.kind}, registered {_when(ctx.version.created_at)})"
    if ctx.current_champion is not None:
        if ctx.current_champion == result.version:
            words += ", the current champion"
        else:
            words += f", not the champion (v{ctx.current_champion} is)"
    return words


def _parse(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None


def _when(text: str) -> str:
    at = _parse(text)
    if at is None:
        return text
    if at.tzinfo is None:
        return at.strftime("%Y-%m-%d %H:%M")
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _window(start: str, end: str) -> str:
    begin, finish = _parse(start), _parse(end)
    text = f"{_when(start)} to {_when(end)}"
    if begin is not None and finish is not None:
        try:
            length = (finish - begin).total_seconds()
        except TypeError:  # one naive, one aware
            return text
        if length > 0:
            text += f" ({fmt.seconds(length)})" if length < 3600 else f" ({_hours(length)})"
    return text


def _hours(seconds: float) -> str:
    hours = seconds / 3600
    if hours < 48:
        return f"{hours:.3g} h"
    return f"{hours / 24:.3g} days"


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _score(value: float | None) -> str:
    return fmt.MISSING if value is None else f"{value:.3f}"


def _column_rows(columns: list[ColumnDrift]) -> list[dict[str, Any]]:
    rows = []
    for c in columns:
        rows.append(
            {
                "column": c.name,
                "source": c.source,
                "kind": c.kind,
                "Hellinger": _score(c.score),
                "sampling noise": _score(c.noise),
                "category": _badge(c.category),
                "missing, reference": fmt.percent(c.reference_missing),
                "missing, current": fmt.percent(c.current_missing),
                "mean, reference": c.reference_mean,
                "mean, current": c.current_mean,
                "out of range, current": c.current_out_of_range,
                "note": c.note,
            }
        )
    return rows


def _column_table(columns: list[ColumnDrift]) -> Html:
    rows = _column_rows(columns)
    names = list(rows[0]) if rows else []
    if not any(c.note for c in columns):
        names = [n for n in names if n != "note"]
    if not any(c.kind == "numeric" for c in columns):
        names = [n for n in names if not n.startswith("mean")]
    if not any(c.current_out_of_range for c in columns):
        names = [n for n in names if n != "out of range, current"]
    return html.table(
        rows,
        names,
        caption="Monitored columns, highest score first",
        highlight=[c.category == DRIFT for c in columns],
        numeric={"Hellinger", "sampling noise", "missing, reference", "missing, current"},
    )


def _table(ctx: ReportContext, columns: list[ColumnDrift]) -> ReportTable:
    rows = [
        {
            "column": c.name,
            "source": c.source,
            "kind": c.kind,
            "score": fmt.json_value(c.score, 3),
            "noise": fmt.json_value(c.noise, 3),
            "category": category_words(c.category),
            "missing_reference": fmt.json_value(c.reference_missing, 3),
            "missing_current": fmt.json_value(c.current_missing, 3),
            "mean_reference": fmt.json_value(c.reference_mean),
            "mean_current": fmt.json_value(c.current_mean),
            "non_finite_current": c.current_non_finite,
            "extreme_current": c.current_extreme,
        }
        for c in columns
    ]
    return ReportTable("drift", f"{ctx.task} drift per monitored column", rows)


def _summary(result: DriftResult) -> list[str]:
    if _no_decision(result):
        verdict = "**no decision** (too little traffic)"
    else:
        verdict = "**drift**" if result.drifted else "**no drift**"
    scored = len([c for c in result.inputs if c.category != UNKNOWN])
    lines = [
        f"drift of v{result.version}: {verdict}; {len(result.drifted_inputs)} of {scored} input columns "
        f"drifted; traffic: {_traffic_words(result)}",
        f"drift decision: {result.decision}",
    ]
    lines += [f"skipped profile `{s.key}`: {s.reason}" for s in result.skipped_profiles]
    return lines


# -- plots ---------------------------------------------------------------------------------


def _short(label: str, chars: int = LABEL_CHARS) -> str:
    return label if len(label) <= chars else label[: chars - 1] + "…"


def _score_chart(columns: list[ColumnDrift], result: DriftResult) -> Html:
    """Scores as horizontal bars coloured by category, with the two thresholds."""
    shown = [c for c in columns if c.score is not None][:MAX_SCORE_BARS]
    fig, (ax,) = plots.new_figure(height=max(2.4, 0.3 * len(shown) + 1.4))
    ax.barh(
        range(len(shown)),
        [c.score or 0.0 for c in shown],
        color=[_CATEGORIES.get(c.category, _CATEGORIES[UNKNOWN])[3] for c in shown],
    )
    t = result.thresholds
    ax.axvline(
        t.possible,
        color=_CATEGORIES[POSSIBLE_DRIFT][3],
        linestyle=":",
        label=f"possible drift {t.possible:.2f}",
    )
    ax.axvline(t.drift, color=_CATEGORIES[DRIFT][3], linestyle="--", label=f"drift {t.drift:.2f}")
    ax.set_yticks(range(len(shown)), [_short(f"{c.name} ({c.source})", 36) for c in shown])
    ax.invert_yaxis()
    top = max([c.score or 0.0 for c in shown] + [t.drift])
    ax.set_xlim(0, min(1.0, top * 1.15 + 0.01))
    title = "Drift score per column"
    if len(shown) < len([c for c in columns if c.score is not None]):
        title += f" (top {len(shown)})"
    plots.style(ax, title, "Hellinger distance (0 = same, 1 = disjoint)", "")
    ax.grid(False, axis="y")
    ax.legend(loc="lower right", fontsize=8)
    return html.figure(
        plots.image(fig, "drift score per monitored column"),
        "Bar colour: red drift, orange possible drift, green no drift. Dashed lines: the thresholds "
        "before the noise adjustment.",
    )


def _plot_order(columns: list[ColumnDrift]) -> list[ColumnDrift]:
    plottable = [c for c in columns if c.distribution is not None and c.distribution.labels]
    return sorted(
        plottable, key=lambda c: (_CATEGORIES.get(c.category, _CATEGORIES[UNKNOWN])[2], -(c.score or 0.0))
    )


def _distribution_blocks(columns: list[ColumnDrift]) -> list[Html]:
    ordered = _plot_order(columns)
    if not ordered:
        return [html.note("No column has data on both sides, so there is nothing to plot.", "info")]
    drawn = ordered[:MAX_PLOTS]
    intro = (
        "Share of rows per bin, reference (blue) against current traffic (orange), drifted columns "
        "first. Numeric bins are the reference's deciles, so the reference bars are near 10% each "
        "and a moved distribution shows as bars that grow or shrink."
    )
    blocks = [html.heading("Distributions, reference against current"), html.paragraph(intro)]
    left_out = len(ordered) - len(drawn)
    unplottable = [c.name for c in columns if c not in ordered]
    if left_out:
        blocks.append(
            html.paragraph(
                f"{_count(left_out, 'more column')} with lower scores "
                f"{'is' if left_out == 1 else 'are'} not plotted (limit {MAX_PLOTS}); "
                "their numbers are in the table above."
            )
        )
    if unplottable:
        blocks.append(
            html.paragraph(f"Without data to plot: {', '.join(unplottable)} (see the note in the table).")
        )
    blocks.append(html.gallery([_distribution_plot(c) for c in drawn]))
    return blocks


def _distribution_plot(column: ColumnDrift) -> Html:
    dist = column.distribution
    assert dist is not None
    labels, reference, current = _fold_rare(dist.labels, dist.reference, dist.current)
    width = max(5.0, min(9.0, 0.55 * len(labels) + 2.5))
    fig, (ax,) = plots.new_figure(width=width, height=3.8)
    positions = range(len(labels))
    ax.bar([p - 0.2 for p in positions], reference, width=0.4, color=REFERENCE_COLOR, label="reference")
    ax.bar([p + 0.2 for p in positions], current, width=0.4, color=CURRENT_COLOR, label="current traffic")
    shown = [_short(label) for label in labels]
    rotate = len(labels) > 4 or max((len(s) for s in shown), default=0) > 8
    ax.set_xticks(list(positions), shown, rotation=35 if rotate else 0, ha="right" if rotate else "center")
    from matplotlib.ticker import PercentFormatter

    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_ylim(0, max([*reference, *current, 0.01]) * 1.15)
    xlabel = (
        f"{_short(column.name, 40)}: bin (reference deciles)"
        if column.kind == "numeric"
        else f"{_short(column.name, 40)}: value"
    )
    title = f"{_short(column.name, 40)}: {category_words(column.category)}, Hellinger {_score(column.score)}"
    plots.style(ax, title, xlabel, "share of rows")
    ax.grid(False, axis="x")
    ax.legend(fontsize=8)
    return html.figure(
        plots.image(fig, f"distribution of {column.name}, reference against current"), _caption(column)
    )


def _caption(column: ColumnDrift) -> str:
    parts = [
        f"{column.source}, {column.kind}",
        f"reference {column.reference_rows:,} rows, current {column.current_rows:,}",
    ]
    if column.reference_mean is not None or column.current_mean is not None:
        parts.append(f"mean {fmt.number(column.reference_mean)} → {fmt.number(column.current_mean)}")
    if column.current_out_of_range:
        parts.append(f"{column.current_out_of_range:,} values out of range (clipped to ±{EXTREME:g})")
    if column.reference_missing or column.current_missing:
        parts.append(
            f"missing {fmt.percent(column.reference_missing)} → {fmt.percent(column.current_missing)}"
        )
    return "; ".join(parts) + "."


def _fold_rare(
    labels: list[str], reference: list[float], current: list[float]
) -> tuple[list[str], list[float], list[float]]:
    """At most ``MAX_CATEGORIES`` bars: the values with the largest shares on either side,
    in their original order, and one bar summing the rest."""
    if len(labels) <= MAX_CATEGORIES:
        return labels, reference, current
    by_size = sorted(range(len(labels)), key=lambda i: -max(reference[i], current[i]))
    keep = sorted(by_size[: MAX_CATEGORIES - 1])
    rest = [i for i in range(len(labels)) if i not in set(keep)]
    return (
        [labels[i] for i in keep] + [f"({len(rest)} other values)"],
        [reference[i] for i in keep] + [sum(reference[i] for i in rest)],
        [current[i] for i in keep] + [sum(current[i] for i in rest)],
    )
