"""Seeded synthetic card transactions whose fraud needs feature interactions to find.

Features are drawn first and the label second, from a risk score made of fraud *patterns*
(conjunctions of conditions) plus latent noise, so no single column separates the classes
and a model has to learn the interactions:

* account takeover: card not present, a device first seen days ago, at night;
* cross-border high value: a country mismatch on a large amount in electronics, jewelry or
  travel;
* card testing: a burst of transactions on a young account.

``drift`` in [0, 1] moves the data the way a new fraud campaign does: amounts grow, more
transactions are card-not-present, online_services and gaming take a bigger share, and a new
pattern (large card-not-present purchases of online_services or gaming by young accounts)
appears while the account-takeover pattern fades. Everything is vectorised numpy, so 100k
rows take a few tens of milliseconds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlplug.dataset import Dataset
from mlplug.schema import Column, Role, Schema
from mlplug_fraud.columns import (
    AMOUNT_COLUMN,
    AMOUNT_EXTRA,
    CLASSES,
    ID_COLUMN,
    TARGET,
    TIME_COLUMN,
)

CATEGORIES = (
    "grocery",
    "gas",
    "restaurant",
    "retail",
    "electronics",
    "travel",
    "online_services",
    "gaming",
    "jewelry",
    "pharmacy",
)
# Category mix without drift and at full drift; rows interpolate between the two.
_MIX = np.array([0.22, 0.12, 0.16, 0.16, 0.07, 0.05, 0.09, 0.05, 0.03, 0.05])
_MIX_DRIFTED = np.array([0.18, 0.10, 0.13, 0.14, 0.07, 0.05, 0.15, 0.11, 0.03, 0.04])
# log-dollar mean of the amount per category (lognormal, so the tail is heavy).
_LOG_AMOUNT = np.array([3.4, 3.6, 3.5, 4.0, 5.2, 5.5, 3.0, 3.2, 5.8, 3.2])
_AMOUNT_SIGMA = 0.9
# Chance the card is physically present, per category.
_CARD_PRESENT = np.array([0.95, 0.95, 0.90, 0.75, 0.50, 0.30, 0.02, 0.05, 0.70, 0.90])
# Share of transactions per hour of day: quiet at night, peaks at lunch and early evening.
_HOURS = np.array(
    [1.0, 0.6, 0.4, 0.3, 0.3, 0.5, 1.2, 2.5, 4.0, 5.0, 5.5, 6.5,
     7.5, 7.0, 6.0, 5.5, 5.5, 6.5, 7.5, 7.0, 5.5, 4.0, 2.5, 1.6]
)  # fmt: skip
_HOURS = _HOURS / _HOURS.sum()

_HIGH_VALUE = np.isin(CATEGORIES, ["electronics", "jewelry", "travel"])
_DIGITAL = np.isin(CATEGORIES, ["online_services", "gaming"])
_START = np.datetime64("2024-01-01T00:00:00")
_SPAN_DAYS = 30


def fraud_schema() -> Schema:
    """The schema of the synthetic data set; it follows the loader's conventions."""
    return Schema(
        features=(
            Column(AMOUNT_COLUMN, Role.NUMERIC, nullable=False, description="transaction amount, USD"),
            Column("merchant_category", Role.CATEGORICAL, nullable=False),
            Column("hour", Role.NUMERIC, nullable=False, description="local hour of day, 0-23"),
            Column("country_mismatch", Role.BOOLEAN, nullable=False,
                   description="card country differs from merchant country"),
            Column("card_present", Role.BOOLEAN, nullable=False),
            Column("device_age_days", Role.NUMERIC, nullable=False,
                   description="days since the device was first seen on this account"),
            Column("txn_velocity_1h", Role.NUMERIC, nullable=False,
                   description="other transactions on the card in the past hour"),
            Column("customer_tenure_days", Role.NUMERIC, nullable=False),
        ),  # fmt: skip
        target=TARGET,
        classes=CLASSES,
        id_column=ID_COLUMN,
        time_column=TIME_COLUMN,
        extras={AMOUNT_EXTRA: AMOUNT_COLUMN},
    )


def generate_frame(rows: int, seed: int = 0, drift: float = 0.0) -> pd.DataFrame:
    """Raw transactions as a file would hold them: flags are bool, the label is 0/1."""
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    if not 0.0 <= drift <= 1.0:
        raise ValueError(f"drift must be in [0, 1], got {drift}")
    rng = np.random.default_rng(seed)
    d = float(drift)

    mix = (1 - d) * _MIX + d * _MIX_DRIFTED
    cat = rng.choice(len(CATEGORIES), size=rows, p=mix / mix.sum())
    amount = np.round(
        np.exp(rng.normal(_LOG_AMOUNT[cat] + 0.35 * d, _AMOUNT_SIGMA)), 2
    ).clip(0.5, None)
    card_present = rng.random(rows) < _CARD_PRESENT[cat] * (1 - 0.25 * d)
    hour = rng.choice(24, size=rows, p=_HOURS)
    night = hour < 6
    # Card-not-present and travel purchases cross borders more often.
    p_mismatch = 0.02 + 0.05 * ~card_present + 0.10 * (cat == CATEGORIES.index("travel")) + 0.03 * d
    country_mismatch = rng.random(rows) < p_mismatch
    new_device_share = 0.10 + 0.06 * d
    device_age = np.where(
        rng.random(rows) < new_device_share,
        rng.exponential(3.0, rows),
        np.exp(rng.normal(5.5, 1.0, rows)),
    ).round(1)
    velocity = rng.poisson(0.4, rows) + rng.poisson(2.5, rows) * (rng.random(rows) < 0.03)
    tenure = np.where(
        rng.random(rows) < 0.08,
        rng.uniform(0, 60, rows),
        60 + rng.exponential(1000.0, rows),
    ).round(0)

    new_device = device_age < 7
    young = tenure < 90
    big = amount > np.exp(_LOG_AMOUNT[cat] + 0.35 * d + 0.8 * _AMOUNT_SIGMA)
    risk = (
        (1 - 0.6 * d) * 4.5 * (~card_present & new_device & night)
        + 1.0 * (~card_present & new_device)
        + 4.0 * (country_mismatch & (amount > 300) & _HIGH_VALUE[cat])
        + 3.0 * ((velocity >= 3) & young)
        + 4.5 * d * (_DIGITAL[cat] & ~card_present & big & (tenure < 180))
        # weak main effects, so linear models see a little of everything
        + 0.4 * country_mismatch
        + 0.3 * night
        + 0.3 * ~card_present
        + 0.2 * (velocity >= 2)
        + rng.normal(0.0, 0.8, rows)
    )
    # Fix the fraud rate whatever the pattern weights: a campaign adds a little fraud.
    p_fraud = _sigmoid(risk + _intercept(risk, 0.015 + 0.005 * d))
    is_fraud = (rng.random(rows) < p_fraud).astype(np.int64)

    # Transactions spread over 30 days; drifted data lies later, as production data does.
    day = rng.integers(0, _SPAN_DAYS, rows) + int(round(120 * d))
    seconds = day * 86_400 + hour * 3_600 + rng.integers(0, 3_600, rows)
    timestamp = pd.to_datetime(_START + seconds.astype("timedelta64[s]")).tz_localize("UTC")
    ids = np.array([f"tx{v:012x}" for v in rng.integers(0, 2**48, rows)], dtype=object)

    frame = pd.DataFrame(
        {
            ID_COLUMN: ids,
            TIME_COLUMN: timestamp,
            AMOUNT_COLUMN: amount,
            "merchant_category": np.array(CATEGORIES, dtype=object)[cat],
            "hour": hour.astype(np.int64),
            "country_mismatch": country_mismatch,
            "card_present": card_present,
            "device_age_days": device_age,
            "txn_velocity_1h": velocity.astype(np.int64),
            "customer_tenure_days": tenure,
            TARGET: is_fraud,
        }
    )
    order = np.argsort(seconds, kind="stable")
    return frame.iloc[order].reset_index(drop=True)


def synthesize(rows: int, seed: int = 0, drift: float = 0.0) -> Dataset:
    """A validated synthetic data set (see :func:`generate_frame`)."""
    source = f"synthetic:fraud?rows={rows}&seed={seed}&drift={drift:g}"
    schema = fraud_schema()
    frame = schema.validate(generate_frame(rows, seed, drift), source)
    return Dataset(frame, schema, source)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _intercept(risk: np.ndarray, rate: float) -> float:
    """The shift b with mean(sigmoid(risk + b)) == rate, by bisection (it is monotone in b)."""
    lo, hi = -30.0, 10.0
    for _ in range(50):
        mid = (lo + hi) / 2
        if _sigmoid(risk + mid).mean() < rate:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2
