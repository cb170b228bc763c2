"""Which rows a version was fitted on, as 64-bit fingerprints of their values.

A champion scored on rows it was fitted on looks better than it is, and the run that should
replace it loses: a retrain on data that grew (a random split puts old rows in the new
holdout) or any version fitted again with its own holdout. Every version stores the
fingerprints of its fitted rows (``fitted_rows.npy``, 8 bytes a row), so that a later run
scores it only on holdout rows it never saw.

A row is its feature values and its label under the version's schema, after validation
(so ``1`` and ``1.0`` in a number column are the same row); the index and columns the
schema does not name play no part. Two equal rows are one fingerprint, which is right: a
model that saw one has seen the other.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd


def row_columns(schema: Mapping[str, Any]) -> list[str]:
    """The columns that identify a row: the features, then the target (a stored schema)."""
    return [c["name"] for c in schema["features"]] + [schema["target"]]


def row_fingerprints(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """One fingerprint per row of ``frame``, in its order."""
    return pd.util.hash_pandas_object(frame[columns], index=False).to_numpy(np.uint64)


def fingerprints(frames: Iterable[pd.DataFrame], columns: list[str]) -> np.ndarray:
    """The sorted, distinct fingerprints of the rows of ``frames`` (``columns`` only)."""
    parts = [row_fingerprints(f, columns) for f in frames]
    return np.unique(np.concatenate(parts)) if parts else np.empty(0, np.uint64)


def seen(rows: np.ndarray, fitted: np.ndarray) -> np.ndarray:
    """For each fingerprint in ``rows``, whether it is in the sorted ``fitted``."""
    if len(fitted) == 0:
        return np.zeros(len(rows), dtype=bool)
    at = np.minimum(np.searchsorted(fitted, rows), len(fitted) - 1)
    return fitted[at] == rows


def digest(rows: np.ndarray) -> str:
    """A short name for a set of rows: the same rows give the same digest, in any order."""
    return hashlib.sha256(np.unique(rows).tobytes()).hexdigest()[:32]


def dump(fitted: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(fitted, dtype=np.uint64), allow_pickle=False)
    return buffer.getvalue()


def load(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)
