"""Business value: QA reviewer time saved by auto-accepting confident predictions.

Today every conversation that is sampled for QA is read by a reviewer. With the model, the
conversations whose top predicted outcome is confident enough are accepted without review;
the confidence threshold is the lowest one at which the accepted predictions are still
right at least ``target_precision`` of the time on the labelled data given (the holdout).
The rest go to reviewers as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mlplug.task import BusinessValue

UNIT = "reviewer hours"
PER_CONVERSATIONS = 1000


@dataclass(frozen=True)
class AutoAccept:
    threshold: float | None  # None: no threshold reaches the target precision
    accepted: int
    correct: int

    @property
    def precision(self) -> float:
        return self.correct / self.accepted if self.accepted else 0.0


def auto_accept_threshold(y: np.ndarray, proba: np.ndarray, target_precision: float) -> AutoAccept:
    """The confidence threshold that accepts the most conversations at ``target_precision``.

    Conversations are ranked by top-class probability; ties share a threshold, so a
    threshold always accepts every conversation at least that confident.
    """
    if not 0.0 < target_precision <= 1.0:
        raise ValueError(f"target_precision must be in (0, 1], got {target_precision}")
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == np.asarray(y)
    order = np.argsort(-confidence, kind="stable")
    conf_sorted, cum_correct = confidence[order], np.cumsum(correct[order])
    # Only the last position of each run of equal confidences is a valid cut.
    last_of_run = np.append(conf_sorted[1:] != conf_sorted[:-1], True)
    cuts = np.flatnonzero(last_of_run)
    precision = cum_correct[cuts] / (cuts + 1)
    ok = cuts[precision >= target_precision]
    if len(ok) == 0:
        return AutoAccept(None, 0, 0)
    cut = int(ok[-1])
    return AutoAccept(float(conf_sorted[cut]), cut + 1, int(cum_correct[cut]))


def review_savings(
    y: np.ndarray,
    proba: np.ndarray,
    classes: Sequence[str],
    *,
    minutes_per_review: float,
    target_precision: float,
) -> BusinessValue:
    """Reviewer hours saved per 1,000 conversations by skipping review of confident ones."""
    if minutes_per_review <= 0:
        raise ValueError(f"minutes_per_review must be > 0, got {minutes_per_review}")
    n = len(y)
    if n == 0 or proba.shape != (n, len(classes)):
        raise ValueError(f"expected probabilities of shape ({n}, {len(classes)}), got {proba.shape}")
    accept = auto_accept_threshold(y, proba, target_precision)
    coverage = accept.accepted / n
    hours_per_1000 = coverage * PER_CONVERSATIONS * minutes_per_review / 60.0
    hours_on_data = accept.accepted * minutes_per_review / 60.0
    details = {
        "target_precision": float(target_precision),
        "minutes_per_review": float(minutes_per_review),
        "conversations": float(n),
        "auto_accepted": float(accept.accepted),
        "auto_accept_share": float(coverage),
        "precision_when_auto_accepted": float(accept.precision),
        "auto_accepted_errors": float(accept.accepted - accept.correct),
        "hours_saved_on_data": float(hours_on_data),
        "reviews_left_per_1000": float(PER_CONVERSATIONS * (1 - coverage)),
    }
    if accept.threshold is not None:
        details["confidence_threshold"] = accept.threshold
    if accept.threshold is None:
        summary = (
            f"No confidence threshold keeps auto-accepted QA outcomes {target_precision:.0%} right on these "
            f"{n:,} conversations, so every conversation still needs a reviewer: 0 reviewer hours saved "
            f"(value is per {PER_CONVERSATIONS:,} conversations)."
        )
    else:
        wrong = accept.accepted - accept.correct
        summary = " ".join(
            [
                f"Value is reviewer hours saved per {PER_CONVERSATIONS:,} conversations.",
                f"Accepting the model's QA outcome when its confidence is at least {accept.threshold:.2f}",
                f"skips manual review for {coverage:.1%} of conversations, and {accept.precision:.1%}",
                f"of those outcomes are right (target {target_precision:.0%}; {wrong} wrong of",
                f"{accept.accepted} on these {n:,} labelled conversations).",
                f"At {minutes_per_review:g} minutes per review that saves {hours_per_1000:,.1f} reviewer",
                f"hours per {PER_CONVERSATIONS:,} conversations ({hours_on_data:,.1f} hours on these {n:,}).",
                "Without a model every conversation is reviewed and no time is saved.",
                "The threshold is chosen on this same data, so expect slightly lower precision on new",
                "conversations.",
            ]
        )
    return BusinessValue(
        value=float(hours_per_1000), unit=UNIT, no_model_value=0.0, summary=summary, details=details
    )
