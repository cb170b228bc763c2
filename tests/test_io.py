"""read_table: csv, parquet and jsonl from a path, file:// and s3://, and every bad input."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from mlplug.errors import DataError
from mlplug.io import detect_format, read_table
from mlplug.testing.servers import S3Server

FRAME = pd.DataFrame({"amount": [1.5, 2.0, 3.25], "kind": ["card", "wire", "café"], "label": [0, 1, 0]})


def write(path: Path, fmt: str) -> Path:
    if fmt == "csv":
        FRAME.to_csv(path, index=False)
    elif fmt == "parquet":
        FRAME.to_parquet(path, index=False)
    else:
        FRAME.to_json(path, orient="records", lines=True, force_ascii=False)
    return path


def same_table(frame: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(frame, FRAME, check_dtype=False)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_reads_each_format_from_a_path_and_a_file_url(tmp_path: Path, fmt: str) -> None:
    path = write(tmp_path / f"my data.{fmt}", fmt)  # the space is percent-encoded in the URL
    same_table(read_table(str(path)))
    assert "%20" in path.as_uri()
    same_table(read_table(path.as_uri()))


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_reads_each_format_from_s3(s3_server: S3Server, s3_store, tmp_path: Path, fmt: str) -> None:
    path = write(tmp_path / f"table.{fmt}", fmt)
    bucket = s3_store.bucket
    s3_server.client().put_object(Bucket=bucket, Key=f"incoming/table.{fmt}", Body=path.read_bytes())
    same_table(read_table(f"s3://{bucket}/incoming/table.{fmt}"))


def test_missing_s3_object_names_the_url(s3_store) -> None:
    url = f"s3://{s3_store.bucket}/incoming/absent.csv"
    with pytest.raises(DataError, match=r"absent\.csv") as info:
        read_table(url)
    assert "does not exist" in str(info.value)


def test_gzip_csv_tsv_and_explicit_format(tmp_path: Path) -> None:
    gz = tmp_path / "t.csv.gz"
    gz.write_bytes(gzip.compress(FRAME.to_csv(index=False).encode()))
    same_table(read_table(str(gz)))
    tsv = tmp_path / "t.tsv"
    tsv.write_text(FRAME.to_csv(index=False, sep="\t"))
    same_table(read_table(str(tsv)))
    txt = tmp_path / "export.txt"
    txt.write_text(FRAME.to_csv(index=False))
    same_table(read_table(str(txt), fmt="csv"))


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("empty.csv", b"", "file is empty"),
        ("blank.jsonl", b"\n  \n", "file is empty"),
        ("header_only.csv", b"amount,kind,label\n", "no data rows"),
        ("garbage.parquet", b"this is not parquet at all", "cannot read as parquet"),
        ("latin1.csv", "amount,kind\n1,café\n".encode("latin-1"), "not valid UTF-8"),
        ("broken.jsonl", b'{"amount": 1}\n{"amount": \n', "cannot read as jsonl"),
        ("table.xlsx", b"PK\x03\x04", "cannot tell the format"),
    ],
)
def test_bad_input_is_a_data_error_naming_the_file(
    tmp_path: Path, name: str, content: bytes, problem: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        read_table(str(path))
    assert name in str(info.value)
    assert problem in str(info.value)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nowhere\.csv: file not found"):
        read_table(str(tmp_path / "nowhere.csv"))
    with pytest.raises(DataError, match=r"nowhere\.parquet: file not found"):
        read_table((tmp_path / "nowhere.parquet").as_uri())
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    with pytest.raises(DataError, match=r"folder\.csv: is a directory"):
        read_table(str(folder))


def test_unknown_format_and_scheme(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data\.csv: unknown format 'xml'"):
        read_table(str(tmp_path / "data.csv"), fmt="xml")
    with pytest.raises(DataError, match=r"ftp://host/data\.csv: unsupported URL scheme 'ftp'"):
        read_table("ftp://host/data.csv")


def test_detect_format() -> None:
    assert detect_format("s3://b/k/data.PARQUET") == "parquet"
    assert detect_format("/x/y.ndjson") == "jsonl"
    assert detect_format("file:///x/y.csv.gz") == "csv"
    assert detect_format("/x/y", fmt="jsonl") == "jsonl"


@pytest.mark.parametrize("fmt", ["csv", "csv.gz", "parquet"])
def test_duplicate_column_names_are_refused_naming_them(tmp_path: Path, fmt: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / f"dup.{fmt}"
    text = "amount,kind,amount,label\n1,a,2,0\n3,b,4,1\n"
    if fmt == "csv":
        path.write_text(text)
    elif fmt == "csv.gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        columns = [pa.array([1, 3]), pa.array(["a", "b"]), pa.array([2, 4]), pa.array([0, 1])]
        pq.write_table(pa.table(columns, names=["amount", "kind", "amount", "label"]), path)
    with pytest.raises(DataError, match=r"dup\.\S+: duplicate column names \['amount'\]"):
        read_table(str(path))


def test_duplicate_keys_across_jsonl_records_are_not_duplicate_columns(tmp_path: Path) -> None:
    path = tmp_path / "ok.jsonl"
    path.write_text('{"amount": 1, "label": 0}\n{"amount": 2, "label": 1}\n')
    assert list(read_table(str(path)).columns) == ["amount", "label"]


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_more_columns_than_the_limit_are_refused_before_parsing(
    tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLPLUG_MAX_COLUMNS", "2")
    path = write(tmp_path / f"wide.{fmt}", fmt)  # three columns
    limit = r"wide\.\w+: 3 columns, more than the limit of 2; .*MLPLUG_MAX_COLUMNS"
    with pytest.raises(DataError, match=limit):
        read_table(str(path))
    monkeypatch.setenv("MLPLUG_MAX_COLUMNS", "3")
    same_table(read_table(str(path)))


def test_a_fifo_or_a_device_is_refused_without_reading_it(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)  # opening it to read would wait for a writer forever
    refused = r"pipe\.csv: is not a regular file .*expected a file or an s3:// URL"
    with pytest.raises(DataError, match=refused):
        read_table(str(fifo))
    with pytest.raises(DataError, match=r"/dev/zero: is not a regular file"):
        read_table("/dev/zero", fmt="csv")  # would read until memory runs out


def test_local_path_downloads_an_s3_object_to_a_temporary_file(
    s3_server: S3Server, s3_store, tmp_path: Path
) -> None:
    from mlplug.io import local_path

    data = write(tmp_path / "table.csv", "csv").read_bytes()
    s3_server.client().put_object(Bucket=s3_store.bucket, Key="incoming/big.csv", Body=data)
    with local_path(f"s3://{s3_store.bucket}/incoming/big.csv") as path:
        assert path.read_bytes() == data and path.name == "big.csv"
    assert not path.exists()
    with (
        pytest.raises(DataError, match=r"absent\.csv.*does not exist"),
        local_path(f"s3://{s3_store.bucket}/absent.csv"),
    ):
        pass
    local = tmp_path / "table.csv"
    with local_path(local.as_uri()) as path:
        assert path == local
