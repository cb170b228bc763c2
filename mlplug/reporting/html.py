"""A small builder for one self-contained HTML document.

Everything a section writes goes through these helpers, which escape text; only
:class:`Html` values are inserted as markup. The document carries its CSS inline and
images as ``data:`` URIs, so it opens offline and can be mailed or attached as one file.
"""

from __future__ import annotations

import html as _html
import traceback
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlplug.reporting import format as fmt


@dataclass(frozen=True)
class Html:
    """A trusted fragment of HTML. Build it with the functions of this module."""

    markup: str

    def __str__(self) -> str:
        return self.markup


def escape(text: Any) -> str:
    return _html.escape(str(text), quote=True)


def _cell(value: Any) -> str:
    return value.markup if isinstance(value, Html) else escape(fmt.number(value))


def join(parts: Iterable[Html]) -> Html:
    return Html("\n".join(p.markup for p in parts))


def paragraph(text: str) -> Html:
    return Html(f"<p>{escape(text)}</p>")


def heading(text: str, level: int = 3) -> Html:
    return Html(f"<h{level}>{escape(text)}</h{level}>")


def strong(text: Any) -> Html:
    return Html(f"<strong>{escape(text)}</strong>")


def code(text: Any) -> Html:
    return Html(f"<code>{escape(text)}</code>")


def bullet_list(items: Iterable[str | Html]) -> Html:
    lis = "".join(f"<li>{i.markup if isinstance(i, Html) else escape(i)}</li>" for i in items)
    return Html(f"<ul>{lis}</ul>")


def note(text: str | Html, level: str = "info") -> Html:
    """A coloured box; ``level`` is ``info``, ``ok``, ``warning`` or ``error``."""
    body = text.markup if isinstance(text, Html) else escape(text)
    return Html(f'<div class="note {escape(level)}">{body}</div>')


def badge(text: str, level: str = "info") -> Html:
    """A short coloured label inside text or a table cell; ``level`` as for :func:`note`."""
    return Html(f'<span class="badge {escape(level)}">{escape(text)}</span>')


def facts(items: Mapping[str, Any] | Sequence[tuple[str, Any]]) -> Html:
    """A two-column table of labelled values."""
    pairs = items.items() if isinstance(items, Mapping) else items
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{_cell(v)}</td></tr>" for k, v in pairs)
    return Html(f'<table class="facts">{rows}</table>')


def table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str] | None = None,
    *,
    caption: str | None = None,
    highlight: Sequence[bool] | None = None,
    numeric: Collection[str] = (),
) -> Html:
    """Rows of mappings as a table; numbers are formatted and right-aligned.

    ``highlight[i]`` marks row ``i`` (the primary metric, the best trial, this version).
    Columns in ``numeric`` are right-aligned too, for numbers a section formatted itself
    (``0.123``, ``12.3%``).
    """
    if not rows:
        return Html('<p class="muted">(no rows)</p>')
    columns = list(columns or rows[0].keys())
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = []
    for i, row in enumerate(rows):
        cells = []
        for c in columns:
            value = row.get(c)
            is_number = isinstance(value, int | float) and not isinstance(value, bool)
            cls = ' class="num"' if is_number or c in numeric else ""
            cells.append(f"<td{cls}>{_cell(value)}</td>")
        mark = ' class="hl"' if highlight is not None and highlight[i] else ""
        body.append(f"<tr{mark}>{''.join(cells)}</tr>")
    cap = f"<caption>{escape(caption)}</caption>" if caption else ""
    table_html = f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    return Html(f'<div class="scroll">{table_html}</div>')


def figure(image: Html, caption: str | None = None) -> Html:
    cap = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return Html(f"<figure>{image.markup}{cap}</figure>")


def gallery(figures: Iterable[Html]) -> Html:
    """Figures side by side where the window is wide enough."""
    return Html(f'<div class="gallery">{"".join(f.markup for f in figures)}</div>')


def details(summary: str, body: Html) -> Html:
    """A collapsed block, for long tables nobody needs at first glance."""
    return Html(f"<details><summary>{escape(summary)}</summary>{body.markup}</details>")


def error_box(title: str, plugin: str, exc: BaseException) -> Html:
    """What replaces a section that raised: the section, its plugin and the error."""
    trace = "".join(traceback.format_exception(exc))[-4000:]
    return Html(
        f'<div class="note error"><strong>The section “{escape(title)}” (plugin '
        f"{escape(plugin)}) failed: {escape(type(exc).__name__)}: {escape(exc)}</strong>"
        "<p>The rest of the report is not affected; the error is also in the run log.</p>"
        f"<details><summary>traceback</summary><pre>{escape(trace)}</pre></details></div>"
    )


@dataclass(frozen=True)
class DocumentSection:
    anchor: str
    title: str
    body: Html


CSS = """
:root { --fg:#1d2733; --muted:#5b6776; --line:#d9dee5; --accent:#2a62b8; --bg:#fff; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       background: var(--bg); margin: 0; }
header { padding: 1.2rem 2rem; border-bottom: 1px solid var(--line); background: #f6f8fb; }
header h1 { margin: 0 0 .3rem; font-size: 1.6rem; }
header p { margin: .1rem 0; color: var(--muted); }
nav { padding: .6rem 2rem; border-bottom: 1px solid var(--line); }
nav a { margin-right: 1.2rem; color: var(--accent); text-decoration: none; }
main { padding: 0 2rem 2rem; max-width: 1200px; }
section { border-bottom: 1px solid var(--line); padding: 1rem 0 1.5rem; }
h2 { font-size: 1.35rem; margin: .6rem 0; }
h3 { font-size: 1.05rem; margin: 1.2rem 0 .4rem; }
table { border-collapse: collapse; margin: .4rem 0 .8rem; font-size: .9rem; }
th, td { border: 1px solid var(--line); padding: .25rem .55rem; text-align: left; vertical-align: top; }
thead th { background: #eef2f7; }
table.facts th { background: #f6f8fb; font-weight: 600; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.hl td { background: #fff7d6; font-weight: 600; }
caption { caption-side: top; text-align: left; color: var(--muted); padding-bottom: .2rem; }
.scroll { overflow-x: auto; }
figure { margin: .4rem 1rem .8rem 0; display: inline-block; vertical-align: top; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: .85rem; max-width: 640px; }
.gallery { display: flex; flex-wrap: wrap; }
.note { border-left: 4px solid var(--accent); background: #eef4fd; padding: .5rem .8rem; margin: .6rem 0; }
.note.ok { border-color: #2e8b57; background: #edf7f1; }
.note.warning { border-color: #c98a00; background: #fff6e0; }
.note.error { border-color: #c0392b; background: #fdeeee; }
.muted { color: var(--muted); }
.badge { display: inline-block; padding: 0 .5rem; border-radius: .7rem; font-size: .8rem;
         font-weight: 600; white-space: nowrap; background: #e3e8ef; color: #3d4856; }
.badge.ok { background: #d7efe1; color: #1e6b41; }
.badge.warning { background: #ffe7ad; color: #7a5300; }
.badge.error { background: #f8d3cf; color: #8e2318; }
pre { white-space: pre-wrap; font-size: .8rem; }
blockquote { margin: .3rem 0 .6rem; padding: .3rem .8rem; border-left: 3px solid var(--line);
             color: var(--muted); }
footer { padding: 1rem 2rem; color: var(--muted); font-size: .85rem; }
"""


def document(title: str, subtitle: Sequence[str], sections: Sequence[DocumentSection], footer: str) -> str:
    """The whole report: header, table of contents, sections, footer."""
    nav = "".join(f'<a href="#{escape(s.anchor)}">{escape(s.title)}</a>' for s in sections)
    body = "\n".join(
        f'<section id="{escape(s.anchor)}"><h2>{escape(s.title)}</h2>\n{s.body.markup}</section>'
        for s in sections
    )
    lines = "".join(f"<p>{escape(line)}</p>" for line in subtitle)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>\n"
        f"<body><header><h1>{escape(title)}</h1>{lines}</header>\n"
        f"<nav>{nav}</nav>\n<main>\n{body}\n</main>\n"
        f"<footer>{escape(footer)}</footer></body></html>\n"
    )
