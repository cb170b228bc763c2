"""Score a file larger than memory: read, validate, predict and write it chunk by chunk.

Three stages run at once, joined by queues two chunks deep, so memory holds a handful of
chunks whatever the file's size: a reader thread parses the next chunk (pyarrow's readers
release the GIL), the calling thread validates and predicts the current one, and a writer
thread appends the previous one's answers to ``<out>.partial``. The file is renamed to
``out`` only after the last chunk; any error deletes it, so a failed run leaves no output
that looks complete. Rows are numbered across the whole file in every message.

A uniform sample of the scored rows (reservoir sampling over the chunks, at most
``profile_rows``) is kept for the drift profile: whylogs profiles about 40,000 rows a second,
so profiling every row of a large file would cost many times the scoring itself.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from mlplug.errors import DataError
from mlplug.io import check_columns, detect_format, local_path
from mlplug.schema import Column, Role, Schema, categories_as_text, text_as_categories
from mlplug.schema_arrow import validate_batch
from mlplug.scoring import LABEL_COLUMN, LoadedModel, ScoredTable, prediction_batch, prediction_frame
from mlplug.settings import get_settings
from mlplug.table_stream import (
    ChunkWriter,
    ConversionError,
    arrow_values,
    output_format,
    read_chunks,
    text_chunks,
)
from mlplug.task import accepts_category_dtype

#: Rows per chunk: large enough that per-chunk costs (a model call, a queue hand-off)
#: vanish, small enough that a few chunks in flight stay far below a gigabyte.
DEFAULT_CHUNK_ROWS = 250_000
#: Rows profiled for drift monitoring by default (a uniform sample of the scored rows).
DEFAULT_PROFILE_ROWS = 100_000
#: Chunks waiting between two stages.
_QUEUE_DEPTH = 2
_DONE = object()


@dataclass
class StreamResult:
    """What a streamed scoring run did."""

    out: Path
    rows: int = 0
    chunks: int = 0
    #: The profiled sample: validated features and probabilities (``None`` without one).
    sample: ScoredTable | None = None
    #: Seconds the calling thread spent per step (read waits, validate, predict, hand-off).
    seconds: dict[str, float] = field(default_factory=dict)


def arrow_types(schema: Schema) -> dict[str, pa.DataType | None]:
    """What each column is read as: numbers as float64 (parsed by the reader), categorical
    and boolean columns dictionary-encoded (few distinct values: :meth:`Schema.validate`
    normalises each once), text and the id column as text."""
    types: dict[str, pa.DataType | None] = {}
    for col in schema.features:
        if col.role is Role.NUMERIC:
            types[col.name] = pa.float64()
        elif col.role is Role.TEXT:
            types[col.name] = pa.string()
        else:
            types[col.name] = pa.dictionary(pa.int32(), pa.string())
    if schema.id_column and schema.id_column not in types:
        types[schema.id_column] = pa.string()
    return types


class ReservoirSample:
    """A uniform sample of at most ``size`` rows of everything added: each row gets a random
    key and the ``size`` smallest keys stay (vectorised reservoir sampling)."""

    def __init__(self, size: int, seed: int = 0) -> None:
        self.size = size
        self._rng = np.random.default_rng(seed)
        self._keys = np.empty(0)
        self._features: pd.DataFrame | None = None
        self._proba: np.ndarray | None = None

    def add(self, features: pd.DataFrame, proba: np.ndarray) -> None:
        if self.size <= 0:
            return
        keys = self._rng.random(len(features))
        if len(self._keys) >= self.size:  # only rows that beat the current largest key
            take = np.flatnonzero(keys < self._keys.max())
            keys, features, proba = keys[take], features.iloc[take], proba[take]
        if self._features is None or self._proba is None:
            merged_keys, merged, merged_proba = keys, features, proba
        else:
            merged_keys = np.concatenate([self._keys, keys])
            merged = pd.concat([self._features, features], ignore_index=True)
            merged_proba = np.concatenate([self._proba, proba])
        keep = np.argsort(merged_keys, kind="stable")[: self.size]
        self._keys = merged_keys[keep]
        self._features = merged.iloc[keep].reset_index(drop=True)
        self._proba = merged_proba[keep]

    def table(self, loaded: LoadedModel) -> ScoredTable | None:
        if self._features is None or self._proba is None or not len(self._features):
            return None
        output = prediction_frame(loaded.schema, self._proba, loaded.version.threshold)
        # Monitoring reads categorical columns as text, whatever the model was given.
        return ScoredTable(categories_as_text(self._features), self._proba, output)


def score_file(
    loaded: LoadedModel,
    url: str,
    out: Path,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    profile_rows: int = 0,
    fmt: str | None = None,
) -> StreamResult:
    """Score every row of ``url`` into ``out`` (.csv, .parquet or .jsonl), chunk by chunk."""
    if chunk_rows < 1:
        raise DataError(f"chunk rows must be at least 1, got {chunk_rows}")
    output_format(out)  # a wrong output name fails before any work
    schema = loaded.schema
    result = StreamResult(out)
    sample = ReservoirSample(profile_rows)
    with local_path(url) as path:
        header, chunks = read_chunks(url, path, arrow_types(schema), chunk_rows, fmt)
        check_columns(header, url, get_settings().max_columns)
        schema.check_columns(header, url, require_target=False)
        try:
            writer = ChunkWriter(out, few_values=[LABEL_COLUMN])
            # JSON lines chunks are pandas, and the reader has read the first one already.
            warm = detect_format(url, fmt) != "jsonl"
            _pipeline(loaded, chunks, url, writer, result, sample, warm=warm)
        except ConversionError as exc:
            _raise_row_of(exc, url, path, schema, chunk_rows)
            raise
    result.sample = sample.table(loaded)
    return result


def _pipeline(
    loaded: LoadedModel,
    chunks: Iterator[Any],
    url: str,
    writer: ChunkWriter,
    result: StreamResult,
    sample: ReservoirSample,
    *,
    warm: bool = False,
) -> None:
    """Read, score and write every chunk; on any error stop both threads first, then delete
    the partial output (a writer still running could otherwise create it again)."""
    stop = threading.Event()
    incoming = _Stage(lambda put: _feed(chunks, put), stop, "mlplug-read")
    outgoing: queue.Queue[Any] = queue.Queue(_QUEUE_DEPTH)
    writing = _Stage(lambda put: _drain(outgoing, writer, stop), stop, "mlplug-write")
    try:
        if warm:
            _warm_up(loaded)  # while the reader reads the first chunk
        for chunk in _timed(incoming.results(), result.seconds, "read_wait"):
            _put(outgoing, _score_chunk(loaded, chunk, url, result, sample), stop, writing)
        if result.rows == 0:
            raise DataError(f"{url}: no data rows")
        _put(outgoing, _DONE, stop, writing)
        writing.join()
        writer.commit()
    except BaseException:
        stop.set()
        incoming.join()
        writing.join()
        writer.abort()
        raise
    finally:
        stop.set()
        incoming.join()


def _warm_up(loaded: LoadedModel) -> None:
    """Validate one made-up row and build its output while the reader reads the first chunk:
    the first call of each pays for code pandas and pyarrow load and set up on first use
    (35-45 ms in a fresh process, against 10 ms for a full chunk after). The model is not
    called: it is the plugin's, and a call may be counted or cost more than it saves."""
    schema = loaded.schema
    columns: dict[str, pa.Array] = {}
    for name, kind in arrow_types(schema).items():
        if kind is None or pa.types.is_floating(kind):
            columns[name] = pa.array([0.0])
        elif pa.types.is_dictionary(kind):
            columns[name] = pa.DictionaryArray.from_arrays(pa.array([0], pa.int32()), pa.array(["0"]))
        else:
            columns[name] = pa.array(["0"])
    # Never a reason to fail the run: a made-up value a column refuses stops the warm-up
    # there, which is enough, and the real chunks go through the same code right after.
    with contextlib.suppress(Exception):
        validate_batch(
            schema, pa.RecordBatch.from_pydict(columns), "", categories=accepts_category_dtype(loaded.model)
        )
        proba = np.full((1, len(schema.classes)), 1 / max(len(schema.classes), 1))
        prediction_batch(schema, proba, loaded.version.threshold, pa.array(["0"]))


def _score_chunk(
    loaded: LoadedModel,
    chunk: pa.RecordBatch | pa.Table | pd.DataFrame,
    url: str,
    result: StreamResult,
    sample: ReservoirSample,
) -> pa.RecordBatch:
    schema = loaded.schema
    clock = time.perf_counter()
    features, ids = _features(schema, chunk, url, result.rows, accepts_category_dtype(loaded.model))
    validated = time.perf_counter()
    proba = np.asarray(loaded.model.predict_proba(features), dtype=np.float64)
    if proba.shape != (len(features), len(schema.classes)):
        raise RuntimeError(
            f"model version {loaded.version.version} returned probabilities of shape {proba.shape} "
            f"for {len(features)} rows and {len(schema.classes)} classes"
        )
    predicted = time.perf_counter()
    batch = prediction_batch(schema, proba, loaded.version.threshold, ids)
    sample.add(features, proba)
    done = time.perf_counter()
    for step, seconds in (
        ("validate", validated - clock),
        ("predict", predicted - validated),
        ("output", done - predicted),
    ):
        result.seconds[step] = result.seconds.get(step, 0.0) + seconds
    result.rows += len(features)
    result.chunks += 1
    return batch


def _features(
    schema: Schema,
    chunk: pa.RecordBatch | pa.Table | pd.DataFrame,
    url: str,
    first_row: int,
    categories: bool,
) -> tuple[pd.DataFrame, pa.Array | None]:
    """The chunk's validated features and its ids. Arrow chunks are validated in Arrow
    (:func:`validate_batch`: no pandas copy of every column); JSON lines chunks are pandas.
    With ``categories`` (the model accepts them) categorical columns are pandas ``category``."""
    names = schema.feature_names
    if isinstance(chunk, pa.RecordBatch | pa.Table):
        features = validate_batch(schema, chunk, url, first_row=first_row, categories=categories)
        ids = None
        if schema.id_column in chunk.schema.names:
            column = chunk.column(schema.id_column)
            ids = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    else:
        frame = chunk[names]
        features = schema.validate(frame, url, require_target=False, first_row=first_row)[names]
        if categories:
            features = text_as_categories(features, schema.columns_with(Role.CATEGORICAL))
        ids = arrow_values(chunk[schema.id_column]) if schema.id_column in chunk.columns else None
    return features, ids


def _raise_row_of(exc: ConversionError, url: str, path: Path, schema: Schema, chunk_rows: int) -> None:
    """A value the CSV reader could not convert: read its column again as text and validate
    it, which names the row (pyarrow names only the column and the value)."""
    columns = [c for c in schema.features if exc.column in (None, c.name) and c.role is Role.NUMERIC]
    for col in columns:
        single = Schema(
            features=(Column(col.name, col.role, col.nullable),), target=schema.target, classes=schema.classes
        )
        offset = 0
        for frame in text_chunks(url, path, col.name, chunk_rows):
            single.validate(frame, url, require_target=False, first_row=offset)
            offset += len(frame)


class _Stage:
    """A thread that runs ``work(put)``; what it puts comes out of :meth:`results`, and an
    exception it raises is raised there too."""

    def __init__(
        self, work: Callable[[Callable[[Any], None]], None], stop: threading.Event, name: str
    ) -> None:
        self.queue: queue.Queue[Any] = queue.Queue(_QUEUE_DEPTH)
        self.error: BaseException | None = None
        self._stop = stop
        self._work = work
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._work(lambda item: _put(self.queue, item, self._stop, None))
        except BaseException as exc:  # handed to the consumer, which raises it
            self.error = exc
        finally:
            _put(self.queue, _DONE, self._stop, None)

    def results(self) -> Iterator[Any]:
        while True:
            item = self.queue.get()
            if item is _DONE:
                if self.error is not None:
                    raise self.error
                return
            yield item

    def join(self) -> None:
        self._thread.join()
        if self.error is not None and not self._stop.is_set():
            raise self.error


def _feed(chunks: Iterator[Any], put: Callable[[Any], None]) -> None:
    for chunk in chunks:
        put(chunk)


def _drain(source: queue.Queue[Any], writer: ChunkWriter, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            item = source.get(timeout=0.1)
        except queue.Empty:
            continue
        if item is _DONE:
            return
        writer.write(item)


def _put(target: queue.Queue[Any], item: Any, stop: threading.Event, consumer: _Stage | None) -> None:
    """Put, unless the run stops first; a consumer that died raises its error here."""
    while not stop.is_set():
        if consumer is not None and consumer.error is not None:
            raise consumer.error
        try:
            target.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def _timed(items: Iterator[Any], seconds: dict[str, float], step: str) -> Iterator[Any]:
    while True:
        started = time.perf_counter()
        try:
            item = next(items)
        except StopIteration:
            return
        finally:
            seconds[step] = seconds.get(step, 0.0) + time.perf_counter() - started
        yield item
