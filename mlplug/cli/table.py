"""Plain-text tables for the CLI: every column as wide as its widest cell."""

from __future__ import annotations

from collections.abc import Sequence


def render_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()
) -> list[str]:
    """Lines of a table with two spaces between columns; columns in ``right`` (numbers) are
    right-aligned. The last column is not padded, so lines carry no trailing spaces."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = []
    for row in (header, *rows):
        cells = [
            str(cell).rjust(width) if i in right else str(cell).ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return lines
