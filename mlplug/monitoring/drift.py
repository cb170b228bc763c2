"""Drift of live traffic against a version's reference profile, column by column, and the
decision it leads to.

Every column is scored with the Hellinger distance between its reference and current
distributions (0: identical, 1: disjoint). Unlike a KS or chi-square p-value, the distance
does not shrink towards "drift" as traffic grows, so one threshold means the same for a
quiet hour and a busy day. Numeric columns are binned at the reference's deciles
(open-ended at both ends), so a long tail such as an amount does not squeeze the bulk into
one bin; categorical columns use the values the sketch kept plus "other". Missing values are
a bin of their own, so a column that starts arriving empty drifts too.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from mlplug.monitoring.bounds import EXTREME, OutOfRange
from mlplug.monitoring.features import MonitoredColumn
from mlplug.monitoring.profiles import SkippedProfile
from mlplug.monitoring.whylogs_compat import CategoricalSketch, NumericSketch, Profile

NO_DRIFT, POSSIBLE_DRIFT, DRIFT, UNKNOWN = "NO_DRIFT", "POSSIBLE_DRIFT", "DRIFT", "UNKNOWN"
_QUANTILES = [i / 10 for i in range(11)]
_MISSING = "(missing)"
_OTHER = "(other)"


@dataclass(frozen=True)
class DriftThresholds:
    #: Hellinger distance from which a column counts as possibly drifted, and as drifted.
    #: Both are raised to 2 and 2.5 times the column's sampling noise when windows are small.
    possible: float = 0.07
    drift: float = 0.1
    #: Share of input columns that must drift for the data to count as drifted.
    share: float = 0.25
    #: Fewer current rows than this gives no decision.
    min_rows: int = 500

    def __post_init__(self) -> None:
        if not 0 < self.possible <= self.drift <= 1:
            raise ValueError(f"need 0 < possible <= drift <= 1, got {self.possible} and {self.drift}")
        if not 0 < self.share <= 1:
            raise ValueError(f"share must be in (0, 1], got {self.share}")

    def category(self, score: float | None, noise: float = 0.0) -> str:
        if score is None or math.isnan(score):
            return UNKNOWN
        if score >= max(self.drift, 2.5 * noise):
            return DRIFT
        return POSSIBLE_DRIFT if score >= max(self.possible, 2 * noise) else NO_DRIFT


@dataclass
class Distribution:
    """Shares per bin of the reference and the current traffic, for the report's plots."""

    labels: list[str]
    reference: list[float]
    current: list[float]
    #: Numeric columns: the bin edges, one more than the finite bins (``-inf``/``inf`` open
    #: the outer bins; the missing bin, if any, comes last and has no edge).
    edges: list[float] | None = None


@dataclass
class ColumnDrift:
    name: str
    kind: str
    source: str
    score: float | None
    category: str
    reference_rows: int
    current_rows: int
    reference_missing: float
    current_missing: float
    reference_mean: float | None = None
    current_mean: float | None = None
    distribution: Distribution | None = None
    #: Distance two samples of these sizes from one distribution typically show.
    noise: float | None = None
    note: str = ""
    #: Infinities, and finite values beyond ``±EXTREME``, counted (and clipped) when the
    #: rows were profiled: evidence that the data changed even where the score barely moves.
    reference_non_finite: int = 0
    current_non_finite: int = 0
    reference_extreme: int = 0
    current_extreme: int = 0

    @property
    def current_out_of_range(self) -> int:
        return self.current_non_finite + self.current_extreme


@dataclass
class DriftResult:
    task: str
    version: int
    reference_rows: int
    current_rows: int
    profiles: int
    window_start: str
    window_end: str
    columns: list[ColumnDrift]
    drifted: bool
    decision: str
    thresholds: DriftThresholds = field(default_factory=DriftThresholds)
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    #: Rows the servers answered in the window; ``current_rows`` of them were profiled (a
    #: server samples above ``MLPLUG_PROFILE_RATE`` rows per second). ``None``: not known.
    seen_rows: int | None = None
    #: Profiles of the window left out of the merge (unreadable, or of another schema).
    skipped_profiles: list[SkippedProfile] = field(default_factory=list)

    @property
    def out_of_range(self) -> list[ColumnDrift]:
        """Columns whose traffic held infinities or extreme values."""
        return [c for c in self.columns if c.current_out_of_range]

    @property
    def inputs(self) -> list[ColumnDrift]:
        return [c for c in self.columns if c.source == "input"]

    @property
    def drifted_inputs(self) -> list[ColumnDrift]:
        return [c for c in self.inputs if c.category == DRIFT]

    @property
    def share(self) -> float:
        scored = [c for c in self.inputs if c.category != UNKNOWN]
        return len(self.drifted_inputs) / len(scored) if scored else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Strict JSON (``json.dumps(..., allow_nan=False)`` never fails): the open ends of
        numeric bins become the strings ``-inf``/``inf``; any other number that is not finite
        becomes ``null``."""
        data = {**asdict(self), "share": self.share}
        for col in data["columns"]:
            dist = col["distribution"]
            if dist and dist["edges"]:
                dist["edges"] = [e if math.isfinite(e) else str(e) for e in dist["edges"]]
        return _finite_or_none(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriftResult:
        skipped = [SkippedProfile(**s) for s in data.get("skipped_profiles", [])]
        ignored = ("share", "columns", "thresholds", "skipped_profiles")
        fields = {k: v for k, v in data.items() if k not in ignored}
        columns = []
        for col in data["columns"]:
            dist = dict(col["distribution"]) if col.get("distribution") else None
            if dist and dist.get("edges"):
                dist["edges"] = [float(e) for e in dist["edges"]]
            rest = {k: v for k, v in col.items() if k != "distribution"}
            columns.append(ColumnDrift(**rest, distribution=Distribution(**dist) if dist else None))
        return cls(
            **fields,
            columns=columns,
            thresholds=DriftThresholds(**data["thresholds"]),
            skipped_profiles=skipped,
        )


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    return value


def hellinger(p: np.ndarray, q: np.ndarray) -> float:
    p, q = np.clip(p, 0, None), np.clip(q, 0, None)
    if p.sum() <= 0 or q.sum() <= 0:
        return math.nan
    p, q = p / p.sum(), q / q.sum()
    return float(np.sqrt(0.5 * np.sum((np.sqrt(p) - np.sqrt(q)) ** 2)))


def sampling_noise(bins: int, n_reference: int, n_current: int) -> float:
    """Root of the expected squared Hellinger distance between two samples of one
    distribution over ``bins`` bins: ``(bins - 1) / 8 * (1/n1 + 1/n2)`` to first order."""
    return math.sqrt(max(bins - 1, 1) / 8 * (1 / max(n_reference, 1) + 1 / max(n_current, 1)))


def score_column(
    column: MonitoredColumn,
    reference: Profile,
    current: Profile,
    thresholds: DriftThresholds,
    out_of_range: tuple[OutOfRange, OutOfRange] = (OutOfRange(), OutOfRange()),
) -> ColumnDrift:
    ref, cur = reference.sketch(column.name, column.kind), current.sketch(column.name, column.kind)
    result = ColumnDrift(
        name=column.name,
        kind=column.kind,
        source=column.source,
        score=None,
        category=UNKNOWN,
        reference_rows=ref.rows if ref else 0,
        current_rows=cur.rows if cur else 0,
        reference_missing=_missing_share(ref),
        current_missing=_missing_share(cur),
        reference_non_finite=out_of_range[0].non_finite,
        current_non_finite=out_of_range[1].non_finite,
        reference_extreme=out_of_range[0].extreme,
        current_extreme=out_of_range[1].extreme,
    )
    if ref is None or cur is None or ref.rows == 0 or cur.rows == 0:
        result.note = "no reference data" if not (ref and ref.rows) else "no current data"
        return result
    if isinstance(ref, NumericSketch) and isinstance(cur, NumericSketch):
        dist = _numeric_distribution(ref, cur)
        result.reference_mean, result.current_mean = ref.mean, cur.mean
    elif isinstance(ref, CategoricalSketch) and isinstance(cur, CategoricalSketch):
        dist = _categorical_distribution(ref, cur)
    else:  # pragma: no cover - both come from the same column list
        raise TypeError(f"column {column.name!r}: sketch kinds differ")
    if dist is None:
        result.note = "all values missing"
        dist = Distribution([_MISSING], [1.0], [1.0])
    result.distribution = dist
    score = hellinger(np.array(dist.reference), np.array(dist.current))
    if not math.isfinite(score):  # a side with no mass at all: nothing to compare
        result.note = "no values to compare"
        return result
    result.score = round(score, 4)
    result.noise = round(sampling_noise(len(dist.labels), ref.rows, cur.rows), 4)
    result.category = thresholds.category(result.score, result.noise)
    return result


def _missing_share(sketch: NumericSketch | CategoricalSketch | None) -> float:
    return sketch.missing / sketch.rows if sketch and sketch.rows else 0.0


def _numeric_distribution(ref: NumericSketch, cur: NumericSketch) -> Distribution | None:
    if ref.empty and cur.empty:
        return None
    source = ref if not ref.empty else cur
    # Profiles written before values were clipped may hold infinities; bins need finite edges.
    points = sorted({q for q in source.quantiles(_QUANTILES) if math.isfinite(q)} or {0.0})
    inner = points[1:-1] if len(points) > 2 else points
    ref_mass = _numeric_mass(ref, inner)
    cur_mass = _numeric_mass(cur, inner)
    edges = [-math.inf, *inner, math.inf]
    # The open outer bins are often empty on both sides (a floor at 0, a ceiling at 1).
    while len(ref_mass) > 1 and ref_mass[-1] == cur_mass[-1] == 0:
        ref_mass, cur_mass, edges = ref_mass[:-1], cur_mass[:-1], edges[:-1]
    while len(ref_mass) > 1 and ref_mass[0] == cur_mass[0] == 0:
        ref_mass, cur_mass, edges = ref_mass[1:], cur_mass[1:], edges[1:]
    labels = [_bin_label(lo, hi) for lo, hi in itertools.pairwise(edges)]
    dist = Distribution(labels, ref_mass, cur_mass, edges=[float(e) for e in edges])
    return _with_missing(dist, ref, cur)


def _numeric_mass(sketch: NumericSketch, points: list[float]) -> list[float]:
    if sketch.empty:
        return [0.0] * (len(points) + 1)
    return [float(v) for v in sketch.pmf(points)]


def _categorical_distribution(ref: CategoricalSketch, cur: CategoricalSketch) -> Distribution | None:
    ref_n, cur_n = ref.rows - ref.missing, cur.rows - cur.missing
    if ref_n <= 0 and cur_n <= 0:
        return None
    # The reference's values first, by frequency; then values only the traffic has.
    labels = sorted(ref.counts, key=lambda v: -ref.counts[v])
    labels += sorted((v for v in cur.counts if v not in ref.counts), key=lambda v: -cur.counts[v])
    ref_mass = [ref.counts.get(v, 0.0) / ref_n if ref_n else 0.0 for v in labels]
    cur_mass = [cur.counts.get(v, 0.0) / cur_n if cur_n else 0.0 for v in labels]
    other = (max(0.0, 1 - sum(ref_mass)), max(0.0, 1 - sum(cur_mass)))
    if max(other) > 1e-9:
        labels.append(_OTHER)
        ref_mass.append(other[0])
        cur_mass.append(other[1])
    return _with_missing(Distribution(labels, ref_mass, cur_mass), ref, cur)


def _with_missing(dist: Distribution, ref: Any, cur: Any) -> Distribution:
    """Scale shares to the non-missing rows and add a missing bin when any are missing."""
    ref_missing, cur_missing = _missing_share(ref), _missing_share(cur)
    dist.reference = [m * (1 - ref_missing) for m in dist.reference]
    dist.current = [m * (1 - cur_missing) for m in dist.current]
    if ref_missing or cur_missing:
        dist.labels.append(_MISSING)
        dist.reference.append(ref_missing)
        dist.current.append(cur_missing)
    return dist


def _bin_label(lo: float, hi: float) -> str:
    if math.isinf(lo):
        return f"< {_fmt(hi)}"
    if math.isinf(hi):
        return f">= {_fmt(lo)}"
    return f"{_fmt(lo)} to {_fmt(hi)}"


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def compare(
    *,
    task: str,
    version: int,
    columns: list[MonitoredColumn],
    reference: Profile,
    current: Profile,
    profiles: int,
    window: tuple[datetime, datetime],
    thresholds: DriftThresholds | None = None,
    seen_rows: int | None = None,
    skipped_profiles: Sequence[SkippedProfile] = (),
) -> DriftResult:
    """Score every monitored column and decide whether the traffic drifted."""
    thresholds = thresholds or DriftThresholds()
    ref_counts, cur_counts = reference.out_of_range(), current.out_of_range()
    scored = [
        score_column(
            c,
            reference,
            current,
            thresholds,
            (ref_counts.get(c.name, OutOfRange()), cur_counts.get(c.name, OutOfRange())),
        )
        for c in columns
    ]
    result = DriftResult(
        task=task,
        version=version,
        reference_rows=reference.rows(),
        current_rows=current.rows(),
        profiles=profiles,
        window_start=window[0].isoformat(timespec="seconds"),
        window_end=window[1].isoformat(timespec="seconds"),
        columns=scored,
        drifted=False,
        decision="",
        thresholds=thresholds,
        seen_rows=seen_rows if seen_rows is not None else current.seen_rows(),
        skipped_profiles=list(skipped_profiles),
    )
    result.drifted, result.decision = decide(result)
    return result


def out_of_range_words(result: DriftResult) -> str:
    """``amount: 2 extreme, 1 infinite; ...`` for the columns whose traffic held such values."""
    parts = []
    for c in result.out_of_range:
        counts = [f"{c.current_extreme} extreme" if c.current_extreme else "",
                  f"{c.current_non_finite} infinite" if c.current_non_finite else ""]  # fmt: skip
        parts.append(f"{c.name}: {', '.join(filter(None, counts))}")
    return "; ".join(parts)


def decide(result: DriftResult) -> tuple[bool, str]:
    drifted, decision = _decide(result)
    if result.out_of_range:
        decision += f"; values out of range (beyond ±{EXTREME:g}): {out_of_range_words(result)}"
    return drifted, decision


def _decide(result: DriftResult) -> tuple[bool, str]:
    t = result.thresholds
    if result.current_rows < t.min_rows:
        return False, (
            f"no decision: {result.current_rows} rows of traffic in the window, fewer than the "
            f"{t.min_rows} needed for a stable comparison"
        )
    drifted = result.drifted_inputs
    outputs = [c for c in result.columns if c.source == "output" and c.category == DRIFT]
    names = ", ".join(f"{c.name} ({c.score:.2f})" for c in sorted(drifted, key=lambda c: -(c.score or 0)))
    counted = f"{len(drifted)} of {len([c for c in result.inputs if c.category != UNKNOWN])} input columns"
    if result.share >= t.share:
        return True, f"drift: {counted} drifted ({names}), share {result.share:.2f} >= {t.share:.2f}"
    if outputs:
        moved = ", ".join(f"{c.name} ({c.score:.2f})" for c in outputs)
        return True, f"drift: the model's outputs drifted ({moved}); {counted} drifted"
    detail = f" ({names})" if drifted else ""
    return False, f"no drift: {counted} drifted{detail}, share {result.share:.2f} < {t.share:.2f}"
