"""Numbers and values as people read them: rounded, with separators, never a raw dict."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

MISSING = "—"


def number(value: Any, digits: int = 4) -> str:
    """A number rounded for reading.

    Scores in (-1, 1) keep ``digits`` decimals (metrics differ in the third or fourth);
    larger values get fewer decimals as they grow, and thousands separators.
    """
    if value is None:
        return MISSING
    if isinstance(value, str):  # already text (a formatted parameter, a label): keep it
        return value
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(v):
        return "n/a"
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    if v == 0:
        return "0"
    size = abs(v)
    if size >= 1000:
        return f"{v:,.0f}"
    if size >= 100:
        return f"{v:,.1f}"
    if size >= 1:
        return f"{v:,.2f}"
    if size >= 10 ** -(digits - 1):
        return f"{v:.{digits}f}"
    return f"{v:.2e}"


def signed(value: float | None, digits: int = 4) -> str:
    """A difference with its sign, e.g. ``+0.0123``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    text = number(value, digits)
    return text if text.startswith("-") or text == "0" else f"+{text}"


def percent(share: float | None, digits: int = 1) -> str:
    if share is None or math.isnan(share):
        return MISSING
    return f"{share * 100:.{digits}f}%"


def size_bytes(count: int | None) -> str:
    if count is None:
        return MISSING
    size = float(count)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{count} B"  # unreachable; keeps type checkers content


def seconds(value: float | None) -> str:
    if value is None or math.isnan(value):
        return MISSING
    if value < 60:
        return f"{value:.1f} s"
    minutes, secs = divmod(value, 60)
    if minutes < 60:
        return f"{int(minutes)} min {secs:.0f} s"
    hours, minutes = divmod(minutes, 60)
    return f"{int(hours)} h {int(minutes)} min"


def humanize(key: str) -> str:
    """``review_fee`` -> ``review fee``: dictionary keys as words."""
    return key.replace("_", " ").strip()


def plain(value: Any) -> str:
    """Any value as short text: mappings become ``key=value`` lists, never a repr."""
    if isinstance(value, Mapping):
        return ", ".join(f"{humanize(str(k))}={plain(v)}" for k, v in value.items()) or MISSING
    if isinstance(value, str):
        return value
    if isinstance(value, Sequence):
        return ", ".join(plain(v) for v in value) or MISSING
    if isinstance(value, float | np.floating) and math.isfinite(value):
        # Parameters as written (0.05, 2, 1e-05): rounding to report precision would hide them.
        return f"{float(value):.6g}"
    return number(value)


def json_value(value: Any, digits: int = 4) -> Any:
    """A value for a Prefect table artifact: JSON-safe (no NaN), floats rounded."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        v = float(value)
        if not math.isfinite(v):
            return None
        return round(v, digits) if abs(v) < 1000 else round(v, 1)
    return plain(value)
