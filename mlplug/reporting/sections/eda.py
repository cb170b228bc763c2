"""Data: what the model was trained on. Shape, column types, missing values, target
balance, the main features' distributions per class, association with the target, the
split, and for text columns length, vocabulary and examples per class."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from mlplug.dataset import Dataset
from mlplug.reporting import format as fmt
from mlplug.reporting import html, plots
from mlplug.reporting.context import ReportContext
from mlplug.reporting.html import Html
from mlplug.reporting.section import ReportSection, SectionOutput
from mlplug.schema import Role

#: Features drawn as distributions (the most associated with the target).
MAIN_FEATURES = 6
#: Classes drawn per plot; more would be unreadable.
MAX_CLASSES_PLOTTED = 6
#: Categories shown per categorical feature; the rest are summed as "other".
TOP_CATEGORIES = 10
#: Text rows tokenised for vocabulary statistics; enough for a stable count, bounded time.
TEXT_SAMPLE = 20_000
EXAMPLES_PER_CLASS = 2
EXAMPLE_CHARS = 300
_WORD = re.compile(r"\w+", re.UNICODE)


class DataSection(ReportSection):
    name = "data"
    title = "Data"
    order = 10

    def render(self, ctx: ReportContext) -> SectionOutput | None:
        if ctx.dataset is None:
            blocks = [html.note("The data set of this run is not available, so there is no EDA.", "warning")]
            blocks += _split_blocks(ctx)
            return SectionOutput(blocks)
        data = ctx.dataset
        schema = data.schema
        frame = data.frame
        y = data.y
        classes = schema.classes
        missing = {c.name: _missing(frame[c.name], c.role) for c in schema.features}
        roles = pd.Series([c.role.value for c in schema.features]).value_counts()
        blocks: list[Html] = [
            html.facts(
                [
                    ("source", data.source),
                    ("dataset version", ctx.dataset_hash[:12] if ctx.dataset_hash else None),
                    ("rows", len(frame)),
                    ("feature columns", len(schema.features)),
                    ("by role", ", ".join(f"{n} {r}" for r, n in roles.items())),
                    ("target", f"{schema.target} ({len(classes)} classes)"),
                    ("cells missing", fmt.percent(sum(missing.values()) / max(1, frame.size))),
                ]
            ),
            html.heading("Columns"),
            html.table(_column_rows(data, missing)),
            html.heading("Target balance"),
            *_target_blocks(y, classes),
        ]
        association = _association(data)
        if association:
            blocks += [
                html.heading("Association with the target"),
                html.paragraph(
                    "0 means the column tells nothing about the class, 1 that it determines it. "
                    "Numeric columns: correlation ratio η; categorical and boolean: Cramér's V; "
                    "text: η of the length in words."
                ),
                html.gallery(
                    [
                        plots.bar_chart(
                            [a["column"] for a in association[:20]],
                            [a["association"] for a in association[:20]],
                            title="Association with the target",
                            xlabel="association (0 = none, 1 = determines the class)",
                        )
                    ]
                ),
                html.details("association table", html.table(association)),
            ]
        main = [a["column"] for a in association if a["role"] != Role.TEXT.value][:MAIN_FEATURES]
        if main:
            blocks += [
                html.heading("Distributions of the main features"),
                html.paragraph(
                    f"The {_count(len(main), 'column')} most associated with the target, per class "
                    "(each class's rows sum to 1, so rare classes stay visible)."
                ),
                _distributions(data, main),
            ]
        for col in schema.columns_with(Role.TEXT):
            blocks += _text_blocks(data, col)
        blocks += _split_blocks(ctx)
        summary = [
            f"data: {len(frame):,} rows, {len(schema.features)} features; target "
            + ", ".join(f"{classes[i]} {fmt.percent(s)}" for i, s in _shares(y, len(classes)))
        ]
        return SectionOutput(blocks, summary=summary)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _missing(values: pd.Series, role: Role) -> int:
    if role in (Role.CATEGORICAL, Role.TEXT):
        # Validation turns missing text into "", so both count as missing.
        return int((values.isna() | (values.astype(str) == "")).sum())
    return int(values.isna().sum())


def _shares(y: np.ndarray, k: int) -> list[tuple[int, float]]:
    counts = np.bincount(y.astype(np.int64), minlength=k)
    return [(i, c / max(1, counts.sum())) for i, c in enumerate(counts)]


def _column_rows(data: Dataset, missing: dict[str, int]) -> list[dict[str, object]]:
    rows = []
    n = max(1, len(data))
    for col in data.schema.features:
        values = data.frame[col.name]
        if col.role is Role.NUMERIC:
            summary = (
                f"mean {fmt.number(values.mean())}, median {fmt.number(values.median())}, "
                f"range {fmt.number(values.min())} to {fmt.number(values.max())}"
            )
        elif col.role is Role.BOOLEAN:
            summary = f"true in {fmt.percent(float(values.mean()))} of rows"
        elif col.role is Role.TEXT:
            words = _word_counts(values)
            summary = f"{fmt.number(float(words.mean()))} words on average, at most {int(words.max()):,}"
        else:
            top = values.value_counts()
            summary = f"most common {top.index[0]!r} ({fmt.percent(top.iloc[0] / n)})" if len(top) else ""
        rows.append(
            {
                "column": col.name,
                "role": col.role.value,
                "dtype": str(values.dtype),
                "missing": missing[col.name],
                "missing %": fmt.percent(missing[col.name] / n),
                "distinct": int(values.nunique()),
                "summary": summary,
            }
        )
    return rows


def _target_blocks(y: np.ndarray, classes: tuple[str, ...]) -> list[Html]:
    shares = _shares(y, len(classes))
    counts = np.bincount(y.astype(np.int64), minlength=len(classes))
    rows = [{"class": classes[i], "rows": int(counts[i]), "share": fmt.percent(s)} for i, s in shares]
    chart = plots.bar_chart(list(classes), [int(c) for c in counts], title="Rows per class", xlabel="rows")
    return [html.table(rows), html.gallery([chart])]


def _word_counts(values: pd.Series) -> pd.Series:
    return values.astype(str).str.count(r"\S+")


def _correlation_ratio(x: np.ndarray, y: np.ndarray) -> float:
    ok = ~np.isnan(x)
    x, y = x[ok], y[ok]
    if len(x) < 2:
        return float("nan")
    total = float(((x - x.mean()) ** 2).sum())
    if total == 0:
        return 0.0
    groups = pd.Series(x).groupby(y)
    between = float((groups.count() * (groups.mean() - x.mean()) ** 2).sum())
    return float(np.sqrt(between / total))


def _cramers_v(x: pd.Series, y: np.ndarray) -> float:
    top = x.value_counts().index[:50]  # ids and free-form codes would inflate V
    x = x.where(x.isin(top), "other")
    table = pd.crosstab(x.to_numpy(), y).to_numpy(dtype=np.float64)
    if table.shape[0] < 2 or table.shape[1] < 2:
        return 0.0
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    chi2 = float(((table - expected) ** 2 / expected).sum())
    return float(np.sqrt(chi2 / (table.sum() * (min(table.shape) - 1))))


def _association(data: Dataset) -> list[dict[str, object]]:
    y = data.y
    out = []
    for col in data.schema.features:
        values = data.frame[col.name]
        if col.role is Role.NUMERIC:
            score, measure = _correlation_ratio(values.to_numpy(np.float64), y), "correlation ratio η"
        elif col.role is Role.TEXT:
            score = _correlation_ratio(_word_counts(values).to_numpy(np.float64), y)
            measure = "η of length in words"
        else:
            score, measure = _cramers_v(values.astype(str), y), "Cramér's V"
        out.append({"column": col.name, "role": col.role.value, "measure": measure, "association": score})
    return sorted(out, key=lambda a: -np.nan_to_num(float(a["association"]), nan=-1.0))


def _plotted_classes(y: np.ndarray, classes: tuple[str, ...]) -> list[int]:
    counts = np.bincount(y.astype(np.int64), minlength=len(classes))
    return sorted(np.argsort(-counts)[:MAX_CLASSES_PLOTTED].tolist())


def _distributions(data: Dataset, columns: list[str]) -> Html:
    roles = {c.name: c.role for c in data.schema.features}
    y = data.y
    classes = data.schema.classes
    shown = _plotted_classes(y, classes)
    cols = 1 if len(columns) == 1 else 2
    rows = (len(columns) + cols - 1) // cols
    fig, axes = plots.new_figure(width=5.6 * cols, height=3.2 * rows, rows=rows, cols=cols)
    for ax, name in zip(axes, columns, strict=False):
        values = data.frame[name]
        if roles[name] is Role.NUMERIC:
            x = values.to_numpy(np.float64)
            finite = x[~np.isnan(x)]
            if len(finite) == 0:
                ax.set_axis_off()
                continue
            # Long tails squash the histogram into one bar; the outer 1% is left out (not
            # piled onto the edge bins, which would invent a spike).
            lo, hi = np.percentile(finite, [0.5, 99.5])
            if lo == hi:
                lo, hi = lo - 0.5, hi + 0.5
            bins = np.linspace(lo, hi, 31)
            for k, c in enumerate(shown):
                part = x[(y == c) & (x >= lo) & (x <= hi)]
                if len(part):
                    ax.hist(
                        part,
                        bins=bins,
                        density=True,
                        histtype="step",
                        linewidth=1.6,
                        color=plots.COLORS[k % len(plots.COLORS)],
                        label=classes[c],
                    )
            plots.style(ax, name, f"{name} (central 99% of values)", "density")
        else:
            if roles[name] is Role.BOOLEAN:
                text = values.map({0.0: "false", 1.0: "true"}).fillna("(missing)").astype(str)
            else:
                text = values.astype(str).replace("", "(missing)")
            top = text.value_counts().index[:TOP_CATEGORIES]
            text = text.where(text.isin(top), "(other)")
            cats = [*top, *(["(other)"] if (text == "(other)").any() else [])]
            width = 0.8 / len(shown)
            for k, c in enumerate(shown):
                part = text[y == c]
                share = part.value_counts(normalize=True).reindex(cats, fill_value=0.0)
                ax.barh(
                    np.arange(len(cats)) + k * width,
                    share.to_numpy(),
                    height=width,
                    color=plots.COLORS[k % len(plots.COLORS)],
                    label=classes[c],
                )
            ax.set_yticks(np.arange(len(cats)) + 0.4 - width / 2, [c[:25] for c in cats])
            ax.invert_yaxis()
            plots.style(ax, name, "share of the class's rows", "")
    for ax in axes[len(columns) :]:
        ax.set_axis_off()
    # One legend for the grid: every panel uses the same colour per class.
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncols=len(shown), title="class", fontsize=9)
    return html.figure(plots.image(fig, "distributions of the main features per class"))


def _text_blocks(data: Dataset, column: str) -> list[Html]:
    values = data.frame[column].astype(str)
    y = data.y
    classes = data.schema.classes
    words = _word_counts(values)
    sample = values if len(values) <= TEXT_SAMPLE else values.sample(TEXT_SAMPLE, random_state=0)
    vocabulary: set[str] = set()
    for text in sample:
        vocabulary.update(w.lower() for w in _WORD.findall(text))
    sampled = f" (in a sample of {len(sample):,} rows)" if len(sample) < len(values) else ""
    blocks: list[Html] = [
        html.heading(f"Text column {column!r}"),
        html.facts(
            [
                ("mean length", f"{fmt.number(float(words.mean()))} words"),
                ("median length", f"{fmt.number(float(words.median()))} words"),
                ("longest", f"{int(words.max()):,} words"),
                ("empty texts", int((words == 0).sum())),
                ("vocabulary", f"{len(vocabulary):,} distinct words{sampled}"),
            ]
        ),
    ]
    fig, (ax,) = plots.new_figure()
    hi = max(1.0, float(np.percentile(words, 99)))
    bins = np.linspace(0, hi, 31)
    for k, c in enumerate(_plotted_classes(y, classes)):
        part = words[y == c].to_numpy(np.float64)
        if len(part):
            ax.hist(
                np.clip(part, 0, hi),
                bins=bins,
                density=True,
                histtype="step",
                linewidth=1.6,
                color=plots.COLORS[k % len(plots.COLORS)],
                label=classes[c],
            )
    plots.style(ax, f"Length of {column!r} per class", "length (words; longest 1% clipped)", "density")
    ax.legend(fontsize=8, title="class", title_fontsize=8)
    blocks.append(html.gallery([plots.image(fig, f"length distribution of {column}")]))
    blocks.append(html.heading(f"Examples per class ({column!r})", 4))
    for c, label in enumerate(classes):
        picked = values[y == c].head(EXAMPLES_PER_CLASS)
        if not len(picked):
            continue
        quotes = "".join(f"<blockquote>{html.escape(_shorten(t))}</blockquote>" for t in picked)
        blocks.append(Html(f"<p><strong>{html.escape(label)}</strong></p>{quotes}"))
    return blocks


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= EXAMPLE_CHARS else text[: EXAMPLE_CHARS - 1] + "…"


def _split_blocks(ctx: ReportContext) -> list[Html]:
    if not ctx.split_rows:
        return []
    total = max(1, sum(ctx.split_rows.values()))
    rows = [{"part": k, "rows": v, "share": fmt.percent(v / total)} for k, v in ctx.split_rows.items()]
    method = f"Split {ctx.split_method}." if ctx.split_method else ""
    return [
        html.heading("Train / validation / holdout split"),
        html.paragraph(
            f"{method} The model is fitted on train, tuned and chosen on valid, and compared with "
            "the baseline and the champion on holdout."
        ),
        html.table(rows),
    ]
