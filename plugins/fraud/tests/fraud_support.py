"""Constants and types shared by the fraud tests (a unique name: conftest.py is not importable
safely when several test folders have one)."""

from __future__ import annotations

from dataclasses import dataclass

from mlplug.dataset import Dataset

#: Enough iterations to learn the patterns of the synthetic data, few enough to stay fast.
FAST_PARAMS = {"iterations": 300, "learning_rate": 0.1}


@dataclass(frozen=True)
class Splits:
    train: Dataset
    valid: Dataset
    test: Dataset
