"""Read tables from a URL (a path, ``file://`` or ``s3://``) in csv, parquet or jsonl.

Task loaders call :func:`read_table`; every failure is a :class:`DataError` naming the URL.
Only regular files and objects are read (a FIFO would block forever, a device never end),
and a table's column names are checked before its rows are parsed: no duplicates (pandas
would rename the second ``amount`` to ``amount.1`` and train on it) and no more than
``MLPLUG_MAX_COLUMNS``.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd

from mlplug.errors import DataError, MlplugError
from mlplug.settings import Settings, get_settings
from mlplug.storage.base import Store

FORMATS = ("csv", "parquet", "jsonl")
_SUFFIXES = {
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}


def detect_format(url: str, fmt: str | None = None) -> str:
    if fmt:
        if fmt not in FORMATS:
            raise DataError(f"{url}: unknown format {fmt!r}; expected one of {list(FORMATS)}")
        return fmt
    path = urlparse(url).path if "://" in url else url
    name = path.lower().removesuffix(".gz")
    for suffix, found in _SUFFIXES.items():
        if name.endswith(suffix):
            return found
    raise DataError(
        f"{url}: cannot tell the format from the file name; use a .csv, .parquet or .jsonl "
        "name or pass the format explicitly"
    )


def _local_file(url: str) -> Path:
    """The existing local file a path or ``file://`` URL names."""
    parsed = urlparse(url)
    path = Path(unquote(parsed.path) if parsed.scheme == "file" else url).expanduser()
    if not path.exists():
        raise DataError(f"{url}: file not found")
    if path.is_dir():
        raise DataError(f"{url}: is a directory, expected a file")
    if not path.is_file():
        raise DataError(
            f"{url}: is not a regular file (a pipe, device or socket); expected a file or an s3:// URL"
        )
    return path


def _s3_object(url: str, settings: Settings | None) -> tuple[Store, str]:
    from mlplug.storage.s3 import S3Store, make_s3_client

    parsed = urlparse(url)
    settings = settings or get_settings()
    store = S3Store(parsed.netloc, "", make_s3_client(settings), settings.s3_endpoint_url)
    return store, parsed.path.lstrip("/")


def _unsupported(url: str) -> DataError:
    scheme = urlparse(url).scheme
    return DataError(f"{url}: unsupported URL scheme {scheme!r}; use a path, file:// or s3://")


def read_bytes(url: str, settings: Settings | None = None) -> bytes:
    """The raw bytes at ``url``; ``DataError`` when missing or unreadable."""
    scheme = urlparse(url).scheme
    if scheme in ("", "file"):
        path = _local_file(url)
        try:
            return path.read_bytes()
        except OSError as exc:
            raise DataError(f"{url}: cannot read: {exc}") from exc
    if scheme == "s3":
        store, key = _s3_object(url, settings)
        try:
            return store.get(key)
        except MlplugError as exc:
            raise DataError(f"{url}: {exc}") from exc
    raise _unsupported(url)


@contextlib.contextmanager
def local_path(url: str, settings: Settings | None = None) -> Iterator[Path]:
    """A local file holding ``url``: the file itself, or an ``s3://`` object downloaded in
    pieces to a temporary file (deleted afterwards), never into memory."""
    scheme = urlparse(url).scheme
    if scheme in ("", "file"):
        yield _local_file(url)
        return
    if scheme != "s3":
        raise _unsupported(url)
    store, key = _s3_object(url, settings)
    with tempfile.TemporaryDirectory(prefix="mlplug-input-") as tmp:
        try:
            dest = store.get_file(key, Path(tmp) / Path(key).name)
        except MlplugError as exc:
            raise DataError(f"{url}: {exc}") from exc
        yield dest


def read_table(url: str, fmt: str | None = None, settings: Settings | None = None) -> pd.DataFrame:
    """Read a whole table. The file must exist, be non-empty and parse as ``fmt``."""
    fmt = detect_format(url, fmt)
    settings = settings or get_settings()
    data = read_bytes(url, settings)
    if not data.strip():
        raise DataError(f"{url}: file is empty")
    compression = "gzip" if url.lower().endswith(".gz") else None
    sep = "\t" if url.lower().removesuffix(".gz").endswith(".tsv") else ","
    header = _header(data, fmt, sep, compression)
    if header is not None:
        check_columns(header, url, settings.max_columns)
    try:
        if fmt == "csv":
            frame = pd.read_csv(io.BytesIO(data), sep=sep, compression=compression)
        elif fmt == "parquet":
            frame = pd.read_parquet(io.BytesIO(data))
        else:
            frame = pd.read_json(io.BytesIO(data), lines=True, compression=compression)
    except UnicodeDecodeError as exc:
        # exc.start counts from the parser's current chunk, not the file: do not report it.
        raise DataError(f"{url}: not valid UTF-8 text ({exc.reason}); save it as UTF-8") from exc
    except Exception as exc:  # parser errors differ per format and library version
        raise DataError(f"{url}: cannot read as {fmt}: {type(exc).__name__}: {exc}") from exc
    if frame.empty:
        raise DataError(f"{url}: no data rows")
    check_columns([str(c) for c in frame.columns], url, settings.max_columns)
    return frame


def check_columns(names: Sequence[str], url: str, max_columns: int) -> None:
    """``DataError`` for duplicate column names or more than ``max_columns`` columns."""
    repeated = [name for name, count in Counter(names).items() if count > 1]
    if repeated:
        raise DataError(f"{url}: duplicate column names {repeated}; every column needs its own name")
    if len(names) > max_columns:
        raise DataError(
            f"{url}: {len(names)} columns, more than the limit of {max_columns}; "
            "drop unused columns or raise MLPLUG_MAX_COLUMNS"
        )


def _header(data: bytes, fmt: str, sep: str, compression: str | None) -> list[str] | None:
    """The column names as the file states them, read without parsing its rows (``None``
    when they cannot be read this way: the parser then reports what is wrong)."""
    try:
        if fmt == "csv":
            raw = gzip.GzipFile(fileobj=io.BytesIO(data)) if compression else io.BytesIO(data)
            text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
            return next(csv.reader(text, delimiter=sep))
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return list(pq.read_schema(io.BytesIO(data)).names)
    except (OSError, UnicodeDecodeError, csv.Error, StopIteration, ValueError, EOFError):
        return None
    return None  # jsonl: the names are keys of every record, checked after parsing
