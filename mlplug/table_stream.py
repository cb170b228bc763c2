"""Tables too large for memory: read them in chunks and write them chunk by chunk.

:func:`read_chunks` yields a file's rows in chunks (row-aligned CSV blocks parsed by
pyarrow's multi-threaded reader, Parquet row groups, JSON lines through pandas' chunked reader),
with only the columns asked for and the types the caller declares, so a chunk reaches the
model without a per-value Python conversion. :class:`ChunkWriter` appends batches to a
``.partial`` file next to the output and renames it into place only when every chunk is
written: a failed run never leaves a file that looks complete.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from mlplug.errors import DataError
from mlplug.io import detect_format

#: Bytes of a CSV file sampled to estimate its row length (and so a block size in rows).
_SAMPLE_BYTES = 1 << 20
#: Bytes pyarrow parses as one task within a chunk (its threads take one block each).
_PARSE_BLOCK_BYTES = 4 << 20
#: pyarrow names the failing column by its position in the file, not by name.
_CSV_COLUMN = re.compile(r"CSV column #(\d+)")

OUTPUT_FORMATS = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


class ConversionError(DataError):
    """A CSV value did not parse as its declared type; ``column`` is its name when known."""

    def __init__(self, message: str, column: str | None) -> None:
        super().__init__(message)
        self.column = column


def read_chunks(
    url: str,
    path: Path,
    columns: Mapping[str, pa.DataType | None],
    chunk_rows: int,
    fmt: str | None = None,
) -> tuple[list[str], Iterator[pa.RecordBatch | pd.DataFrame]]:
    """The file's column names and an iterator over its chunks of about ``chunk_rows`` rows.

    ``columns`` maps the columns wanted to their Arrow type (``None``: as the file has it);
    columns the file lacks are left out, so the caller checks the names it requires.
    CSV and Parquet chunks are record batches; JSON lines chunks are DataFrames. A value a
    CSV reader cannot convert raises :class:`ConversionError`.
    """
    fmt = detect_format(url, fmt)
    if path.stat().st_size == 0:
        raise DataError(f"{url}: file is empty")
    if fmt == "csv":
        return _csv_chunks(url, path, columns, chunk_rows)
    if fmt == "parquet":
        return _parquet_chunks(url, path, columns, chunk_rows)
    return _jsonl_chunks(url, path, columns, chunk_rows)


def _csv_options(url: str, path: Path, chunk_rows: int) -> tuple[Any, Any]:
    import pyarrow.csv as pcsv

    with open(path, "rb") as handle:
        sample = handle.read(_SAMPLE_BYTES)
    compressed = url.lower().endswith(".gz")
    lines = max(sample.count(b"\n"), 1)
    row_bytes = 64 if compressed else max(len(sample) // lines, 1)  # gz: a rough guess
    read = pcsv.ReadOptions(block_size=max(chunk_rows * row_bytes, 1 << 16))
    sep = "\t" if url.lower().removesuffix(".gz").endswith(".tsv") else ","
    return read, pcsv.ParseOptions(delimiter=sep)


def _open_csv(path: Path, read: Any, parse: Any, convert: Any) -> Any:
    import pyarrow.csv as pcsv

    return pcsv.open_csv(pa.input_stream(str(path), compression="detect"), read, parse, convert)


def _csv_chunks(
    url: str, path: Path, columns: Mapping[str, pa.DataType | None], chunk_rows: int
) -> tuple[list[str], Iterator[pa.RecordBatch]]:
    import pyarrow.csv as pcsv

    read, parse = _csv_options(url, path, chunk_rows)
    try:
        # The header from a small first block: opening a reader parses its first block.
        first = pcsv.ReadOptions(block_size=1 << 16)
        header = _open_csv(path, first, parse, pcsv.ConvertOptions(include_columns=[])).schema.names
    except pa.ArrowInvalid as exc:
        raise DataError(f"{url}: cannot read as csv: {exc}") from exc
    present = [c for c in columns if c in header]
    types = {c: t for c, t in columns.items() if c in header and t is not None}
    # Empty cells and NA words are missing in text columns too, as pandas reads them.
    convert = pcsv.ConvertOptions(include_columns=present, column_types=types, strings_can_be_null=True)

    def batches() -> Iterator[pa.RecordBatch | pa.Table]:
        try:
            if url.lower().endswith(".gz"):  # cannot be cut into blocks: pyarrow streams it
                yield from _open_csv(path, read, parse, convert)
                return
            # pyarrow parses a buffer's blocks in parallel: a chunk parsed as one block would use
            # one core (0.28 s against 0.18 s per million rows, and 10% more CPU).
            parse_block = min(read.block_size, _PARSE_BLOCK_BYTES)
            names = pcsv.ReadOptions(column_names=header, block_size=parse_block)
            # Quoted fields may hold newlines; pyarrow parses those only when told, and slower.
            quoted = pcsv.ParseOptions(delimiter=parse.delimiter, newlines_in_values=True)
            for block, newlines_in_values in _csv_blocks(path, read.block_size):
                options = quoted if newlines_in_values else parse
                yield pcsv.read_csv(pa.py_buffer(block), names, options, convert)
        except pa.ArrowInvalid as exc:
            found = _CSV_COLUMN.search(str(exc))
            index = int(found.group(1)) if found else -1
            column = header[index] if 0 <= index < len(header) else None
            if "conversion error" in str(exc):
                raise ConversionError(f"{url}: {exc}", column) from exc
            raise DataError(f"{url}: cannot read as csv: {exc}") from exc

    return header, batches()


def _csv_blocks(path: Path, block_bytes: int) -> Iterator[tuple[bytes, bool]]:
    """The file after its header in pieces of about ``block_bytes`` that end at a row end,
    each with whether a quoted field in it holds a newline.

    Read here rather than by pyarrow's streaming reader, which reads ahead of its parser
    without bound (700 MB of a 800 MB file when the model is the slower side); each block is
    parsed by pyarrow's multi-threaded reader. A newline inside a quoted field is not a row
    end: rows end at newlines preceded by an even number of quote characters in the block.
    """
    with open(path, "rb") as handle:
        head = handle.read(block_bytes)
        ends, _ = _row_ends(head)
        if not len(ends):  # a header without rows
            return
        data, carry = head[int(ends[0]) :] or handle.read(block_bytes), b""
        while True:
            buffer = carry + data if carry else data
            ends, quoted = _row_ends(buffer)
            if not data:
                if buffer.strip():
                    yield buffer, bool(len(quoted))
                return
            if not len(ends):  # one row longer than a block: read on
                carry = buffer
            else:
                cut = int(ends[-1])
                yield buffer[:cut], bool(len(quoted) and quoted[0] < cut)
                carry = buffer[cut:]
            data = handle.read(block_bytes)


def _row_ends(buffer: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Offsets just after each newline outside quotes, and of newlines inside quotes."""
    data = np.frombuffer(buffer, dtype=np.uint8)
    newlines = np.flatnonzero(data == 10)
    quotes = np.flatnonzero(data == 34)
    if not len(quotes):
        return newlines + 1, newlines[:0]
    inside = np.searchsorted(quotes, newlines) % 2 == 1
    return newlines[~inside] + 1, newlines[inside]


def text_chunks(url: str, path: Path, column: str, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """One CSV column as text, chunk by chunk: to find the row of a value that did not
    convert (pyarrow names the column and the value, not the row)."""
    import pyarrow.csv as pcsv

    read, parse = _csv_options(url, path, chunk_rows)
    parse = pcsv.ParseOptions(delimiter=parse.delimiter, newlines_in_values=True)
    convert = pcsv.ConvertOptions(
        include_columns=[column], column_types={column: pa.string()}, strings_can_be_null=True
    )
    for batch in _open_csv(path, read, parse, convert):
        yield batch.to_pandas()


def _parquet_chunks(
    url: str, path: Path, columns: Mapping[str, pa.DataType | None], chunk_rows: int
) -> tuple[list[str], Iterator[pa.RecordBatch]]:
    import pyarrow.parquet as pq

    try:
        stored = pq.read_schema(str(path))
        # Only text can be read dictionary-encoded (a stored bool or number stays as it is).
        dictionary = [
            c
            for c, t in columns.items()
            if t is not None
            and pa.types.is_dictionary(t)
            and c in stored.names
            and (pa.types.is_string(stored.field(c).type) or pa.types.is_large_string(stored.field(c).type))
        ]
        file = pq.ParquetFile(str(path), read_dictionary=dictionary)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{url}: cannot read as parquet: {exc}") from exc
    header = file.schema_arrow.names
    present = [c for c in columns if c in header]

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            yield from file.iter_batches(batch_size=chunk_rows, columns=present)
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{url}: cannot read as parquet: {exc}") from exc

    return header, batches()


def _jsonl_chunks(
    url: str, path: Path, columns: Mapping[str, pa.DataType | None], chunk_rows: int
) -> tuple[list[str], Iterator[pd.DataFrame]]:
    compression = "gzip" if url.lower().endswith(".gz") else None

    def frames() -> Iterator[pd.DataFrame]:
        try:
            reader = pd.read_json(path, lines=True, chunksize=chunk_rows, compression=compression)
            with reader:
                for frame in reader:
                    yield frame[[c for c in columns if c in frame.columns]]
        except ValueError as exc:
            raise DataError(f"{url}: cannot read as jsonl: {exc}") from exc

    chunks = frames()
    try:
        first = next(chunks)
    except StopIteration:
        raise DataError(f"{url}: no data rows") from None
    # JSON lines have no header: the first chunk's keys stand for the file's columns.
    return list(first.columns), _prepend(first, chunks)


def _prepend(first: pd.DataFrame, rest: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    yield first
    yield from rest


def output_format(out: Path) -> str:
    fmt = OUTPUT_FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise DataError(f"{out}: output format must be .csv, .parquet or .jsonl")
    return fmt


class ChunkWriter:
    """Appends record batches to ``out`` (csv, parquet or jsonl) through ``<out>.partial``;
    :meth:`commit` renames it into place, :meth:`abort` deletes it.

    In Parquet only the ``few_values`` columns (labels) are dictionary-encoded: pyarrow's
    default builds a dictionary for every column of every row group and drops it again for
    unique ids and probabilities, which more than doubled the cost of writing (32 against 14
    ms per 250k rows of id, probability and label)."""

    def __init__(self, out: Path, few_values: Sequence[str] = ()) -> None:
        self.out = out
        self.few_values = list(few_values)
        self.format = output_format(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        self.partial = out.with_name(out.name + ".partial")
        self._sink: Any = None
        self._writer: Any = None
        self.rows = 0

    def write(self, batch: pa.RecordBatch) -> None:
        if self._writer is None:
            self._open(batch.schema)
        if self.format == "jsonl":
            # pandas' default keeps 10 decimal places: a probability of 1e-12 would read 0.
            batch.to_pandas().to_json(self._sink, orient="records", lines=True, double_precision=15)
            self._sink.write("\n")
        else:
            self._writer.write_batch(batch)
        self.rows += batch.num_rows

    def _open(self, schema: pa.Schema) -> None:
        if self.format == "csv":
            import pyarrow.csv as pcsv

            # Quotes only where needed, as pandas writes CSV.
            options = pcsv.WriteOptions(quoting_style="needed")
            self._writer = pcsv.CSVWriter(str(self.partial), schema, write_options=options)
        elif self.format == "parquet":
            import pyarrow.parquet as pq

            encoded = [name for name in self.few_values if name in schema.names]
            self._writer = pq.ParquetWriter(str(self.partial), schema, use_dictionary=encoded)
        else:
            self._sink = self._writer = open(self.partial, "w", encoding="utf-8")  # noqa: SIM115

    def commit(self) -> Path:
        if self._writer is None:
            raise DataError(f"{self.out}: nothing to write")
        self._writer.close()
        os.replace(self.partial, self.out)
        return self.out

    def abort(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):  # already failing; the file goes anyway
                self._writer.close()
        self.partial.unlink(missing_ok=True)


def arrow_values(values: Sequence[Any] | pd.Series) -> pa.Array:
    """A column of a pandas chunk as Arrow, as text when its values mix types."""
    series = pd.Series(values)
    try:
        return pa.array(series, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array(series.astype(str))
