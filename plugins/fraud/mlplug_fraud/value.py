"""The cost model: what fraud and alerts cost, the threshold that saves most, and the savings.

A transaction is flagged when P(fraud) >= threshold. A missed fraud loses its amount (or a
fixed average loss when the data has no amount column); a flagged legitimate transaction (a
false alarm) costs a review fee; a caught fraud loses nothing. Without a model every fraud
is missed and nothing is reviewed, so the savings of a threshold are

    caught fraud losses - review fee x false alarms.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlplug.dataset import Dataset
from mlplug.task import BusinessValue, Metrics
from mlplug_fraud.columns import AMOUNT_EXTRA


class CostModel(BaseSettings):
    """Costs, from ``MLPLUG_FRAUD_REVIEW_FEE`` / ``MLPLUG_FRAUD_DEFAULT_LOSS`` /
    ``MLPLUG_FRAUD_CURRENCY`` or passed to ``FraudTask(costs=CostModel(...))``."""

    model_config = SettingsConfigDict(env_prefix="MLPLUG_FRAUD_", extra="ignore", frozen=True)

    review_fee: float = Field(5.0, ge=0, description="cost of reviewing one false alarm")
    default_loss: float = Field(150.0, gt=0, description="loss per missed fraud without an amount column")
    currency: str = Field("USD", min_length=1)


def fraud_losses(data: Dataset, costs: CostModel) -> tuple[np.ndarray, str]:
    """What each row would lose if it were a missed fraud, and a phrase saying how."""
    column = data.schema.extras.get(AMOUNT_EXTRA)
    if column and column in data.frame.columns:
        amounts = data.frame[column].to_numpy(dtype=np.float64)
        # A refund (negative amount) cannot lose money; a missing amount loses the average.
        losses = np.where(np.isnan(amounts), costs.default_loss, np.clip(amounts, 0.0, None))
        return losses, f"the transaction amount ({column!r})"
    return np.full(len(data), costs.default_loss), f"a fixed {costs.default_loss:,.2f} {costs.currency}"


def choose_threshold(y: np.ndarray, fraud_proba: np.ndarray, losses: np.ndarray, review_fee: float) -> float:
    """The threshold with the largest savings on these rows.

    Works for any score where higher means "flag first" (probabilities, expected losses).
    Scans every distinct score once (O(n log n)). Ties go to the higher threshold, i.e. to
    fewer alerts. When no threshold saves anything, the threshold lies just above the top
    score, so that none of these rows is flagged.
    """
    if len(y) == 0:
        return 1.0
    order = np.argsort(-fraud_proba, kind="stable")
    scores = fraud_proba[order]
    caught = np.cumsum((losses * (y == 1))[order])
    false_alarms = np.cumsum((y == 0)[order])
    ends = np.flatnonzero(np.r_[scores[1:] != scores[:-1], True])  # last row of each tie
    savings = caught[ends] - review_fee * false_alarms[ends]
    best = int(np.argmax(savings))
    if savings[best] <= 0:
        return float(np.nextafter(scores[0], np.inf))
    return float(scores[ends[best]])


@dataclass(frozen=True)
class Outcome:
    """Counts and money at one threshold."""

    threshold: float
    transactions: int
    frauds: int
    caught_fraud: int
    missed_fraud: int
    false_alarms: int
    caught_loss: float
    missed_loss: float
    review_cost: float

    @property
    def cost_without_model(self) -> float:
        return self.caught_loss + self.missed_loss

    @property
    def cost_with_model(self) -> float:
        return self.missed_loss + self.review_cost

    @property
    def savings(self) -> float:
        return self.cost_without_model - self.cost_with_model

    def as_dict(self) -> dict[str, float]:
        data = {k: float(v) for k, v in asdict(self).items()}
        data.update(
            cost_without_model=self.cost_without_model,
            cost_with_model=self.cost_with_model,
            savings=self.savings,
        )
        return data


def outcome(
    y: np.ndarray, fraud_proba: np.ndarray, threshold: float, losses: np.ndarray, review_fee: float
) -> Outcome:
    flagged = fraud_proba >= threshold
    fraud = y == 1
    false_alarms = int((flagged & ~fraud).sum())
    return Outcome(
        threshold=threshold,
        transactions=len(y),
        frauds=int(fraud.sum()),
        caught_fraud=int((flagged & fraud).sum()),
        missed_fraud=int((~flagged & fraud).sum()),
        false_alarms=false_alarms,
        caught_loss=float(losses[flagged & fraud].sum()),
        missed_loss=float(losses[~flagged & fraud].sum()),
        review_cost=review_fee * false_alarms,
    )


def business_value(data: Dataset, proba: np.ndarray, metrics: Metrics, costs: CostModel) -> BusinessValue:
    """Savings against no model at ``metrics.threshold`` (chosen here if it is missing)."""
    y = data.y
    fraud_proba = np.asarray(proba, dtype=np.float64)[:, 1]
    losses, how = fraud_losses(data, costs)
    threshold = metrics.threshold
    if threshold is None:
        threshold = choose_threshold(y, fraud_proba, losses, costs.review_fee)
    result = outcome(y, fraud_proba, threshold, losses, costs.review_fee)
    details = result.as_dict()
    details.update(review_fee=costs.review_fee, default_loss=costs.default_loss)
    summary = _summary(result, costs, how)
    if data.schema.extras.get(AMOUNT_EXTRA):
        # What ranking by expected loss instead of by probability would save: a hint for
        # deployments that can use the amount in the decision (mlplug's threshold cannot).
        expected_loss = fraud_proba * losses
        cutoff = choose_threshold(y, expected_loss, losses, costs.review_fee)
        aware = outcome(y, expected_loss, cutoff, losses, costs.review_fee)
        details.update(amount_aware_cutoff=cutoff, amount_aware_savings=aware.savings)
        summary += (
            f" Flagging by expected loss instead (P(fraud) x amount >= {cutoff:,.2f}) would save "
            f"{aware.savings:,.0f} {costs.currency}."
        )
    return BusinessValue(
        value=result.savings, unit=costs.currency, no_model_value=0.0, summary=summary, details=details
    )


def _summary(r: Outcome, costs: CostModel, how: str) -> str:
    cur = costs.currency
    verdict = (
        f"saves {r.savings:,.0f} {cur} against no model"
        if r.savings >= 0
        else f"costs {-r.savings:,.0f} {cur} more than no model"
    )
    return (
        f"On {r.transactions:,} transactions with {r.frauds:,} frauds, flagging P(fraud) >= "
        f"{r.threshold:.3g} catches {r.caught_fraud:,} frauds ({r.caught_loss:,.0f} {cur}), misses "
        f"{r.missed_fraud:,} ({r.missed_loss:,.0f} {cur}) and raises {r.false_alarms:,} false alarms "
        f"({r.review_cost:,.0f} {cur} at {costs.review_fee:,.2f} {cur} per review): it {verdict}, "
        f"where fraud without a model would cost {r.cost_without_model:,.0f} {cur}. "
        f"A missed fraud costs {how}."
    )
