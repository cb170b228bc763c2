"""Public binary tables that pip packages ship, prepared for the fraud task type.

Each table comes out as a frame whose ``target`` column holds 0/1 (1 = the rarer or the
interesting class), with leaky columns removed. Nothing is downloaded at run time beyond the
package index: ISLP's tables are read from the ``islp==0.6.0`` wheel (installed with
``--no-deps`` into a scratch directory, benchmark-only), and breast_cancer from the
scikit-learn that mlplug already depends on.

Chosen to cover what a user brings: rare positives (Default, Caravan, Wage), small tables
(Carseats, College, OJ, breast_cancer), native categories (Wage, Carseats, OJ, Caravan's
codes) and near-linear signal (Default, breast_cancer) where logistic regression is hard to
beat. Left out: Smarket and Weekly (``Today`` is the label in another form, and without it
the lags carry almost no signal, so every model ties at the base rate); the regression
tables other than the two ISLR turns into classic classification exercises (Wage, Carseats).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

ISLP = "islp==0.6.0"


@dataclass(frozen=True)
class Table:
    name: str
    target: str
    why: str
    read: Callable[[Path], pd.DataFrame]  # ISLP data directory -> prepared frame
    #: numeric columns that are codes, passed to ``mlplug train fraud --categorical``
    categorical: tuple[str, ...] = field(default=())


def _islp(name: str) -> Callable[[Path], pd.DataFrame]:
    def read(data: Path) -> pd.DataFrame:
        return pd.read_csv(data / f"{name}.csv")

    return read


def _default(data: Path) -> pd.DataFrame:
    frame = _islp("Default")(data)
    return frame.assign(default=(frame["default"] == "Yes").astype(int))


def _caravan(data: Path) -> pd.DataFrame:
    frame = _islp("Caravan")(data)
    return frame.assign(Purchase=(frame["Purchase"] == "Yes").astype(int))


def _oj(data: Path) -> pd.DataFrame:
    frame = _islp("OJ")(data)
    return frame.assign(Purchase=(frame["Purchase"] == "MM").astype(int))


def _college(data: Path) -> pd.DataFrame:
    frame = _islp("College")(data)
    return frame.assign(public=(frame.pop("Private") == "No").astype(int))


def _wage(data: Path) -> pd.DataFrame:
    frame = _islp("Wage")(data)
    high = (frame.pop("wage") > 250).astype(int)
    return frame.drop(columns=["logwage"]).assign(high_earner=high)


def _carseats(data: Path) -> pd.DataFrame:
    frame = _islp("Carseats")(data)
    return frame.assign(High=(frame.pop("Sales") > 8).astype(int))


def _breast_cancer(data: Path) -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    return frame.assign(malignant=(frame.pop("target") == 0).astype(int))


TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "Default",
            "default",
            "10,000 card holders, 3.3 % default; balance, income, student. Rare positives and a "
            "nearly logistic signal in balance: the table where logistic regression is hardest to beat",
            _default,
        ),
        Table(
            "Caravan",
            "Purchase",
            "5,822 insurance customers, 6 % buy caravan cover; 85 weak, correlated socio-demographic "
            "columns (two are category codes). Rare positives, many noisy features",
            _caravan,
            ("MOSTYPE", "MOSHOOFD"),
        ),
        Table(
            "OJ",
            "Purchase",
            "1,070 orange-juice purchases, 39 % Minute Maid; prices, discounts, brand loyalty and the "
            "store (a code). Small, balanced-ish, collinear price columns",
            _oj,
            ("StoreID", "STORE"),
        ),
        Table(
            "College",
            "public",
            "777 US colleges, 27 % public; 17 numeric admissions and cost figures. Small, strong "
            "signal, skewed counts",
            _college,
        ),
        Table(
            "Wage",
            "high_earner",
            "3,000 Mid-Atlantic workers, 2.6 % earn over 250k (ISLR's logistic example); age, year and "
            "six categorical columns (education, marital status, job class, ...). Very few positives, "
            "mostly categorical",
            _wage,
        ),
        Table(
            "Carseats",
            "High",
            "400 stores, 41 % sell more than 8k car seats (ISLR's tree example); prices, advertising, "
            "shelf location (category), urban/US (yes/no). The smallest table",
            _carseats,
        ),
        Table(
            "breast_cancer",
            "malignant",
            "569 tumours (scikit-learn), 37 % malignant; 30 continuous measurements. Nearly "
            "separable: differences show at the top of the ranking",
            _breast_cancer,
        ),
    )
}


def islp_data_dir(scratch: Path) -> Path:
    """The ``data`` directory of the ISLP wheel, installed into ``scratch`` once."""
    target = scratch / "islp"
    data = target / "ISLP" / "data"
    if not (data / "Default.csv").is_file():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), ISLP],
            check=True,
        )
    return data


def text_columns(frame: pd.DataFrame, table: Table) -> list[str]:
    """The columns a one-hot encoder should see: text columns and the declared codes."""
    features = frame.drop(columns=[table.target])
    return [
        c
        for c in features.columns
        if c in table.categorical or not pd.api.types.is_numeric_dtype(features[c])
    ]
