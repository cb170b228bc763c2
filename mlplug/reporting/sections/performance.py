"""Model performance: the registered candidate against the other candidate (main model or
baseline) and the previous champion on the same holdout rows; curves, calibration and a
threshold analysis for binary tasks; a confusion matrix for all; feature attributions."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mlplug.record import TrainingRecord
from mlplug.reporting import format as fmt
from mlplug.reporting import html, plots
from mlplug.reporting.context import ReportContext
from mlplug.reporting.html import Html
from mlplug.reporting.section import ReportSection, ReportTable, SectionOutput
from mlplug.schema import DEFAULT_THRESHOLD
from mlplug.task import Metrics

#: The predictions column of the registered model before calibration (see mlplug.training).
UNCALIBRATED = "uncalibrated"
#: Points per curve in a plot; more only slow rendering down.
CURVE_POINTS = 400
THRESHOLDS = np.linspace(0.0, 1.0, 101)
TABLE_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
TOP_ATTRIBUTIONS = 20
#: Confusion matrices larger than this are tables only; a heatmap would be unreadable.
HEATMAP_CLASSES = 15


class PerformanceSection(ReportSection):
    name = "performance"
    title = "Model performance"
    order = 20

    def render(self, ctx: ReportContext) -> SectionOutput | None:
        if ctx.holdout is None:
            return SectionOutput([html.note("No holdout evaluation is stored for this version.", "warning")])
        m = ctx.holdout
        candidates = _candidates(ctx)
        blocks: list[Html] = [html.paragraph(_headline(ctx, m)), _metrics_table(ctx, candidates)]
        if isinstance(m.details.get("note"), str):
            blocks.append(html.note(m.details["note"], "warning"))
        blocks += _selection_blocks(ctx)
        if ctx.validation:
            blocks.append(
                html.details("selection metrics of every candidate", _validation_table(ctx.validation))
            )
        facts = [("selection", ctx.selection), ("promotion decision", ctx.decision)]
        blocks.append(html.facts([(k, v) for k, v in facts if v]))
        blocks += _prediction_blocks(ctx)
        blocks += _attribution_blocks(ctx)
        summary = [_summary_line(ctx, m)]
        if ctx.decision:
            summary.append(f"decision: {ctx.decision}")
        rows = [
            {
                "metric": name,
                **{label: fmt.json_value(metrics.values.get(name)) for label, metrics in candidates},
            }
            for name in _metric_names(m)
        ]
        return SectionOutput(
            blocks, summary=summary, tables=[ReportTable("metrics", f"{ctx.task} holdout metrics", rows)]
        )


def _candidates(ctx: ReportContext) -> list[tuple[str, Metrics]]:
    """Labelled metrics in display order: registered, other candidate, champion."""
    assert ctx.holdout is not None
    out = [(f"registered ({ctx.candidate_kind or 'model'})", ctx.holdout)]
    if ctx.other is not None:
        out.append((ctx.other_kind or "other candidate", ctx.other))
    if ctx.champion is not None:
        label = f"champion v{ctx.champion_version}" if ctx.champion_version else "champion"
        subset = ctx.champion_subset
        out.append((f"{label} ({subset[0]})" if subset else label, ctx.champion))
    return out


def _metric_names(m: Metrics) -> list[str]:
    return [m.primary, *(k for k in m.values if k != m.primary)]


def _better(m: Metrics, diff: float) -> str:
    if math.isnan(diff) or diff == 0:
        return "equal"
    return "better" if (diff > 0) == m.higher_is_better else "worse"


def _headline(ctx: ReportContext, m: Metrics) -> str:
    direction = "higher" if m.higher_is_better else "lower"
    rows = f" ({ctx.split_rows['holdout']:,} rows)" if "holdout" in ctx.split_rows else ""
    text = (
        f"The registered {ctx.candidate_kind or 'model'} scores {m.primary} = {fmt.number(m.score)} "
        f"on the holdout{rows}; {direction} is better."
    )
    subset = ctx.champion_subset
    for label, other in (
        (ctx.other_kind or "the other candidate", ctx.other),
        (f"the champion v{ctx.champion_version}", None if subset else ctx.champion),
    ):
        if other is not None and m.primary in other.values:
            diff = m.score - other.values[m.primary]
            text += (
                f" Against {label}: {fmt.number(other.values[m.primary])} "
                f"({fmt.signed(diff)}, {_better(m, diff)})."
            )
    if subset and ctx.champion is not None and m.primary in ctx.champion.values:
        (basis, mine), theirs = subset, ctx.champion.values[m.primary]
        diff = mine.score - theirs
        text += (
            f" Against the champion v{ctx.champion_version}, {basis} (it was fitted on the others): "
            f"{fmt.number(theirs)} against {fmt.number(mine.score)} for the registered "
            f"{ctx.candidate_kind or 'model'} on those rows ({fmt.signed(diff)}, {_better(mine, diff)})."
        )
    if ctx.champion is None:
        text += " There was no champion to compare with on these rows."
    return text


def _summary_line(ctx: ReportContext, m: Metrics) -> str:
    parts = [f"{m.primary} **{fmt.number(m.score)}** on the holdout ({ctx.candidate_kind or 'model'})"]
    if ctx.other is not None and m.primary in ctx.other.values:
        parts.append(f"{ctx.other_kind or 'other'} {fmt.number(ctx.other.values[m.primary])}")
    if ctx.champion is not None and m.primary in ctx.champion.values:
        parts.append(f"champion v{ctx.champion_version} {fmt.number(ctx.champion.values[m.primary])}")
    return "; ".join(parts)


def _metrics_table(ctx: ReportContext, candidates: list[tuple[str, Metrics]]) -> Html:
    m = ctx.holdout
    assert m is not None
    rows = []
    for name in _metric_names(m):
        row: dict[str, object] = {"metric": name + (" (primary)" if name == m.primary else "")}
        for label, metrics in candidates:
            row[label] = metrics.values.get(name)
        for label, metrics in candidates[1:]:
            if name in metrics.values:
                row[f"Δ vs {label}"] = fmt.signed(m.values[name] - metrics.values[name])
        rows.append(row)
    columns = [
        "metric",
        *(label for label, _ in candidates),
        *(f"Δ vs {label}" for label, _ in candidates[1:]),
    ]
    return html.table(
        rows,
        columns,
        caption="Holdout metrics (same rows for every column)",
        highlight=[i == 0 for i in range(len(rows))],
    )


def _selection_blocks(ctx: ReportContext) -> list[Html]:
    """Each candidate's score per fold with mean and spread, the baseline's search, and the
    calibration tried: how sure the choice is, and what the served probabilities went through."""
    record = ctx.record
    if record is None or not any(c.folds for c in record.candidates):
        return []
    primary = record.registered.validation.primary
    width = max(len(c.folds) for c in record.candidates)
    rows = []
    for c in record.candidates:
        if not c.folds:
            continue
        row: dict[str, object] = {
            "candidate": c.kind + (" (registered)" if c.kind == record.registered_kind else "")
        }
        row["mean"] = float(np.mean(c.folds))
        row["spread (sd)"] = float(np.std(c.folds)) if len(c.folds) > 1 else None
        for i, score in enumerate(c.folds, start=1):
            row[f"fold {i}" if width > 1 else "validation"] = score
        rows.append(row)
    columns = [
        "candidate",
        "mean",
        "spread (sd)",
        *(k for k in rows[0] if k.startswith(("fold", "validation"))),
    ]
    blocks = [
        html.heading("How the candidates were chosen"),
        html.paragraph(
            f"Candidates were compared {record.selection_method or 'on validation data'}; {primary} per fold."
            + _fit_rows_sentence(record)
        ),
        html.table(rows, columns, highlight=[str(r["candidate"]).endswith("(registered)") for r in rows]),
    ]
    for c in record.candidates:
        if c.searched:
            tried = [
                {
                    "parameters": ", ".join(f"{k}={v}" for k, v in t.get("params", {}).items()),
                    "mean": t.get("mean"),
                    "spread (sd)": t.get("spread"),
                }
                for t in c.searched
            ]
            blocks.append(html.details(f"{c.kind} configurations searched ({primary})", html.table(tried)))
    if record.calibration is not None:
        from mlplug.calibration import describe

        blocks.append(html.paragraph(f"Calibration: {record.calibration.reason}."))
        if record.calibration.scores:
            blocks.append(
                html.details(
                    "calibration methods compared (out-of-sample, lower is better)",
                    html.table(describe(record.calibration.scores)),
                )
            )
    return blocks


def _validation_table(validation: dict[str, Metrics]) -> Html:
    names = list(dict.fromkeys(k for m in validation.values() for k in m.values))
    rows = [{"metric": n, **{kind: m.values.get(n) for kind, m in validation.items()}} for n in names]
    return html.table(rows, ["metric", *validation], caption="Validation metrics (used to choose)")


# -- predictions: curves, calibration, thresholds, confusion matrix ------------------------


def _probabilities(ctx: ReportContext) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
    preds = ctx.predictions
    classes = ctx.classes
    if preds is None or "y" not in preds or not classes:
        return None
    labels = {"registered": f"registered ({ctx.candidate_kind or 'model'})"}
    if ctx.other_kind:
        labels[ctx.other_kind] = ctx.other_kind
    labels[UNCALIBRATED] = f"registered before calibration ({ctx.candidate_kind or 'model'})"
    labels["champion"] = f"champion v{ctx.champion_version}" if ctx.champion_version else "champion"
    out = {}
    for who, label in labels.items():
        cols = [f"{who}:{c}" for c in classes]
        if all(c in preds.columns for c in cols):
            out[label] = preds[cols].to_numpy(np.float64)
    return preds["y"].to_numpy(np.int64), out


def _prediction_blocks(ctx: ReportContext) -> list[Html]:
    found = _probabilities(ctx)
    if found is None:
        return [html.note("No holdout predictions are stored, so there are no curves.", "info")]
    y, probas = found
    registered = next((p for label, p in probas.items() if label.startswith("registered")), None)
    if registered is None:
        return [html.note("The stored predictions lack the registered model's column.", "warning")]
    classes = ctx.classes
    schema = ctx.schema
    assert schema is not None  # predictions are stored with a dataset or a version
    blocks: list[Html] = []
    predicted = schema.predicted_indices(registered, ctx.threshold)
    if len(classes) == 2:
        if len(np.unique(y)) < 2:
            blocks.append(
                html.note("The holdout holds one class only: no ROC, PR or calibration.", "warning")
            )
        else:
            blocks += _binary_blocks(ctx, y, {k: p[:, 1] for k, p in probas.items()})
        threshold = DEFAULT_THRESHOLD if ctx.threshold is None else float(ctx.threshold)
        rule = f"flagged as {classes[1]!r} when P({classes[1]}) ≥ {fmt.number(threshold, 3)}"
    else:
        rule = "the class with the highest probability"
        blocks += _per_class_blocks(y, predicted, classes)
    blocks += _confusion_blocks(y, predicted, classes, rule)
    return blocks


def _thin(*arrays: np.ndarray) -> list[np.ndarray]:
    n = len(arrays[0])
    if n <= CURVE_POINTS:
        return list(arrays)
    keep = np.unique(np.linspace(0, n - 1, CURVE_POINTS).astype(int))
    return [a[keep] for a in arrays]


def _binary_blocks(ctx: ReportContext, y: np.ndarray, scores: dict[str, np.ndarray]) -> list[Html]:
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

    positive = ctx.classes[1]
    roc_fig, (roc,) = plots.new_figure(width=5.2, height=4.2)
    pr_fig, (pr,) = plots.new_figure(width=5.2, height=4.2)
    cal_fig, (cal,) = plots.new_figure(width=5.2, height=4.2)
    for k, (label, p) in enumerate(scores.items()):
        color = plots.COLORS[k % len(plots.COLORS)]
        observed, predicted = calibration_curve(y, p, n_bins=10, strategy="quantile")
        cal.plot(predicted, observed, marker="o", color=color, label=label)
        if label.startswith("registered before calibration"):
            continue  # the same ranking as the registered model: only its calibration differs
        fpr, tpr, _ = roc_curve(y, p)
        fpr, tpr = _thin(fpr, tpr)
        roc.plot(fpr, tpr, color=color, label=f"{label} (AUC {roc_auc_score(y, p):.3f})")
        precision, recall, _ = precision_recall_curve(y, p)
        recall, precision = _thin(recall, precision)
        pr.plot(recall, precision, color=color, label=f"{label} (AP {average_precision_score(y, p):.3f})")
    roc.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    plots.style(roc, "ROC curve (holdout)", "false positive rate", "true positive rate")
    prevalence = float(np.mean(y == 1))
    pr.axhline(prevalence, linestyle="--", color="grey", label=f"chance ({fmt.percent(prevalence)})")
    plots.style(pr, "Precision-recall curve (holdout)", f"recall ({positive})", f"precision ({positive})")
    cal.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    plots.style(
        cal,
        "Calibration (10 equal-count bins)",
        f"mean predicted P({positive})",
        f"observed share of {positive}",
    )
    for ax in (roc, pr, cal):
        ax.legend(fontsize=8)
    blocks = [
        html.heading("Ranking and calibration"),
        html.gallery(
            [
                html.figure(
                    plots.image(roc_fig, "ROC curve"),
                    "ROC: how well the scores rank positives above negatives, at every threshold.",
                ),
                html.figure(
                    plots.image(pr_fig, "precision-recall curve"),
                    "Precision-recall: the trade-off that matters when positives are rare.",
                ),
                html.figure(
                    plots.image(cal_fig, "calibration curve"),
                    "Calibration: on the diagonal, predicted probabilities match observed rates."
                    + (
                        " The registered model is drawn before and after calibration."
                        if any(label.startswith("registered before calibration") for label in scores)
                        else ""
                    ),
                ),
            ]
        ),
    ]
    registered = next(p for label, p in scores.items() if label.startswith("registered"))
    return blocks + _threshold_blocks(ctx, y, registered)


def _at(y: np.ndarray, p: np.ndarray, t: float) -> dict[str, float | int]:
    flagged = p >= t
    tp = int(np.sum(flagged & (y == 1)))
    fp = int(np.sum(flagged & (y == 0)))
    fn = int(np.sum(~flagged & (y == 1)))
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else float("nan")
    return {
        "flagged": float(flagged.mean()),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "tp": tp,
        "fp": fp,
        "fn": fn,
    }


def _threshold_blocks(ctx: ReportContext, y: np.ndarray, p: np.ndarray) -> list[Html]:
    positive = ctx.classes[1]
    curve = pd.DataFrame([_at(y, p, t) for t in THRESHOLDS])
    fig, (ax,) = plots.new_figure(width=6.4, height=4.0)
    for k, column in enumerate(("precision", "recall", "f1", "flagged")):
        label = "share of rows flagged" if column == "flagged" else column
        ax.plot(THRESHOLDS, curve[column], color=plots.COLORS[k], label=label)
    chosen = ctx.threshold
    if chosen is not None:
        ax.axvline(chosen, color="black", linestyle=":", label=f"chosen threshold {fmt.number(chosen, 3)}")
    plots.style(
        ax, "Threshold analysis (registered model, holdout)", f"threshold on P({positive})", "value (0 to 1)"
    )
    ax.legend(fontsize=8)
    dist_fig, (dist,) = plots.new_figure(width=6.4, height=4.0)
    bins = np.linspace(0, 1, 41)
    for k, c in enumerate((0, 1)):
        dist.hist(
            p[y == c],
            bins=bins,
            density=True,
            histtype="step",
            linewidth=1.6,
            color=plots.COLORS[k],
            label=f"true {ctx.classes[c]}",
        )
    if chosen is not None:
        dist.axvline(chosen, color="black", linestyle=":", label="chosen threshold")
    plots.style(dist, "Predicted probability per true class", f"P({positive})", "density")
    dist.legend(fontsize=8)
    points = sorted({*TABLE_THRESHOLDS, *([float(chosen)] if chosen is not None else [])})
    rows = [{"threshold": t, **_at(y, p, t)} for t in points]
    for row in rows:
        row["flagged"] = fmt.percent(float(row["flagged"]))
    return [
        html.heading("Threshold analysis"),
        html.paragraph(
            f"How precision, recall and the share of rows flagged as {positive!r} move with the "
            "decision threshold"
            + (f"; the task chose {fmt.number(chosen, 3)}." if chosen is not None else ".")
        ),
        html.gallery(
            [
                html.figure(plots.image(fig, "threshold analysis")),
                html.figure(plots.image(dist_fig, "score distribution")),
            ]
        ),
        html.table(
            rows,
            ["threshold", "flagged", "precision", "recall", "f1", "tp", "fp", "fn"],
            highlight=[chosen is not None and math.isclose(r["threshold"], chosen) for r in rows],
        ),
    ]


def _per_class_blocks(y: np.ndarray, predicted: np.ndarray, classes: tuple[str, ...]) -> list[Html]:
    from sklearn.metrics import precision_recall_fscore_support

    labels = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y, predicted, labels=labels, zero_division=0
    )
    rows = [
        {
            "class": classes[i],
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "rows": int(support[i]),
        }
        for i in labels
    ]
    return [html.heading("Per class (holdout)"), html.table(rows)]


def _confusion_blocks(
    y: np.ndarray, predicted: np.ndarray, classes: tuple[str, ...], rule: str
) -> list[Html]:
    k = len(classes)
    matrix = np.zeros((k, k), dtype=np.int64)
    np.add.at(matrix, (y, predicted), 1)
    rows = []
    for i, label in enumerate(classes):
        row: dict[str, object] = {"true \\ predicted": label}
        row.update({c: int(matrix[i, j]) for j, c in enumerate(classes)})
        total = int(matrix[i].sum())
        row["recall"] = fmt.percent(matrix[i, i] / total) if total else fmt.MISSING
        rows.append(row)
    blocks = [
        html.heading("Confusion matrix (registered model, holdout)"),
        html.paragraph(f"Rows are true classes, columns predicted ones; a row is predicted as {rule}."),
        html.table(rows),
    ]
    if k <= HEATMAP_CLASSES:
        share = matrix / np.maximum(1, matrix.sum(axis=1, keepdims=True))
        fig, (ax,) = plots.new_figure(width=max(4.2, 1.8 + 0.7 * k), height=max(3.2, 1.4 + 0.6 * k))
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for i in range(k):
            for j in range(k):
                ax.text(
                    j,
                    i,
                    f"{matrix[i, j]:,}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if share[i, j] > 0.5 else "black",
                )
        short = [c[:12] for c in classes]
        ax.set_xticks(range(k), short, rotation=30 if k > 4 else 0)
        ax.set_yticks(range(k), short)
        plots.style(ax, "Confusion matrix", "predicted class", "true class")
        ax.grid(False)
        blocks.append(
            html.gallery(
                [html.figure(plots.image(fig, "confusion matrix"), "Colour: share of the true class.")]
            )
        )
    return blocks


# -- attributions -------------------------------------------------------------------------


def _attribution_blocks(ctx: ReportContext) -> list[Html]:
    blocks = [html.heading("Feature attributions")]
    explanation = ctx.explanation
    if explanation is None or not explanation.global_importance:
        kind = f" ({explanation.kind})" if explanation else ""
        return [*blocks, html.note(f"The task reported no attributions for this model{kind}.", "info")]
    ranked = sorted(explanation.global_importance.items(), key=lambda kv: -abs(kv[1]))[:TOP_ATTRIBUTIONS]
    values = [v for _, v in ranked]
    colors = [plots.COLORS[0] if v >= 0 else plots.COLORS[1] for v in values]
    blocks.append(
        html.paragraph(
            f"Global importance as computed by the task ({explanation.kind}); the "
            f"{len(ranked)} strongest of {len(explanation.global_importance)}. Task plugins may add "
            "their own attribution sections."
        )
    )
    blocks.append(
        html.gallery(
            [
                plots.bar_chart(
                    [k for k, _ in ranked],
                    values,
                    title=f"Global importance ({explanation.kind})",
                    xlabel="attribution (task's unit; sign = direction)",
                    colors=colors,
                )
            ]
        )
    )
    if explanation.per_row:
        rows = [
            {
                "row": i,
                "strongest attributions": ", ".join(
                    f"{name} ({fmt.signed(v, 3)})"
                    for name, v in sorted(r.items(), key=lambda kv: -abs(kv[1]))[:5]
                ),
            }
            for i, r in enumerate(explanation.per_row[:5])
        ]
        blocks.append(html.details(f"per-row attributions (first {len(rows)} rows)", html.table(rows)))
    return blocks


def _fit_rows_sentence(record: TrainingRecord) -> str:
    if record.refit_rows is None:
        return ""
    if record.holdout_refit:
        return (
            f" After the comparison with the champion, the registered version was fitted once more on all "
            f"{record.refit_rows:,} rows, the holdout included; its holdout figures in this report are those "
            "of the same configuration fitted without the holdout rows, the fit that was compared."
        )
    return f" The registered version was fitted on {record.refit_rows:,} rows."
