"""A validated frame with its schema, and the content hash that versions it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from mlplug.errors import DataError
from mlplug.schema import Schema


@dataclass
class Dataset:
    """A frame already normalised by :meth:`Schema.validate`, plus where it came from."""

    frame: pd.DataFrame
    schema: Schema
    source: str

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def X(self) -> pd.DataFrame:  # noqa: N802 - the usual ML name
        return self.frame[self.schema.feature_names]

    @property
    def y(self) -> np.ndarray:
        return self.frame[self.schema.target].to_numpy()

    def subset(self, rows: np.ndarray | slice) -> Dataset:
        return Dataset(self.frame.iloc[rows].reset_index(drop=True), self.schema, self.source)

    def window(self, since: str = "", until: str = "") -> Dataset:
        """The rows whose time column falls in ``[since, until)`` (ISO times; empty: open)."""
        if not since and not until:
            return self
        column = self.schema.time_column
        if not column or column not in self.frame.columns:
            raise DataError(
                f"{self.source}: a time window (since {since or '-'}, until {until or '-'}) needs a "
                "time column, and this data has none; give the loader its time column option"
            )
        times = pd.to_datetime(self.frame[column])
        keep = np.ones(len(self.frame), dtype=bool)
        for bound, label in ((since, "since"), (until, "until")):
            if not bound:
                continue
            try:
                at = pd.Timestamp(bound)
            except ValueError as exc:
                raise DataError(f"{label} {bound!r} is not an ISO time such as 2026-11-01T00:00") from exc
            if at.tzinfo is not None and times.dt.tz is None:
                at = at.tz_convert("UTC").tz_localize(None)  # loaders keep naive UTC times
            keep &= (times >= at).to_numpy() if label == "since" else (times < at).to_numpy()
        if not keep.any():
            raise DataError(
                f"{self.source}: no rows with {column!r} in the window since {since or '-'} "
                f"until {until or '-'} (the data spans {times.min()} to {times.max()})"
            )
        subset = self.subset(np.flatnonzero(keep))
        return Dataset(
            subset.frame, self.schema, f"{self.source}, {column} in [{since or '…'}, {until or '…'})"
        )

    def content_hash(self) -> str:
        """sha256 over the schema and the column values, independent of file format.

        Arrow's IPC stream of a metadata-free table is a stable byte form of the data, so
        the same rows read from CSV or Parquet hash the same.
        """
        digest = hashlib.sha256()
        digest.update(json.dumps(self.schema.to_dict(), sort_keys=True).encode())
        # pandas may hold text as object or as its "str" dtype; hash both the same way.
        frame = self.frame.astype(
            {c: object for c in self.frame.columns if isinstance(self.frame[c].dtype, pd.StringDtype)}
        )
        table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
        sink = _HashWriter(digest)
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return digest.hexdigest()


class _HashWriter:
    """A write-only file object that feeds a hash instead of storing bytes."""

    def __init__(self, digest: hashlib._Hash) -> None:
        self._digest = digest
        self.closed = False

    def write(self, data: bytes) -> int:
        self._digest.update(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True
