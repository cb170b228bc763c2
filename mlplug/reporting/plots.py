"""Matplotlib figures as embedded PNG images.

Figures are made with ``matplotlib.figure.Figure`` and drawn by the Agg canvas directly,
not through ``pyplot``: no global backend is switched, nothing opens a window, no figure is
kept in pyplot's registry (a leak in long-lived workers), and importing this module does not
import matplotlib at all.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mlplug.reporting.html import Html, escape

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: Resolution of embedded images: sharp on a laptop screen, ~30-60 KB per plot.
DPI = 90
#: A colour per candidate, the same in every plot of a report.
COLORS = ("#2a62b8", "#d9822b", "#2e8b57", "#8e44ad", "#c0392b", "#7f8c8d")


def new_figure(
    width: float = 6.4, height: float = 3.8, rows: int = 1, cols: int = 1
) -> tuple[Figure, list[Axes]]:
    """A figure on the Agg canvas and its axes, flattened row by row."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, [ax for row in axes for ax in row]


def image(fig: Figure, alt: str) -> Html:
    """The figure as an ``<img>`` with a ``data:`` URI; the figure is released after."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    fig.clear()
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return Html(f'<img src="data:image/png;base64,{data}" alt="{escape(alt)}">')


def style(ax: Axes, title: str, xlabel: str, ylabel: str) -> None:
    """Title and axis labels on every plot: a chart without them is not readable alone."""
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str,
    xlabel: str,
    alt: str | None = None,
    colors: Sequence[str] | None = None,
    annotate: bool = False,
) -> Html:
    """Horizontal bars, first label on top; long labels are shortened. ``annotate`` writes
    each value next to its bar (for a handful of bars whose exact amounts matter)."""
    shown = [label if len(label) <= 40 else label[:37] + "..." for label in labels]
    fig, (ax,) = new_figure(height=max(2.2, 0.32 * len(labels) + 1.2))
    bars = ax.barh(range(len(values)), values, color=list(colors) if colors else COLORS[0])
    if annotate:
        from mlplug.reporting.format import number

        ax.bar_label(bars, labels=[number(v) for v in values], padding=3, fontsize=9)
        ax.margins(x=0.15)
    ax.set_yticks(range(len(values)), shown)
    ax.invert_yaxis()
    style(ax, title, xlabel, "")
    ax.grid(True, axis="x", alpha=0.3)
    ax.grid(False, axis="y")
    return image(fig, alt or title)
