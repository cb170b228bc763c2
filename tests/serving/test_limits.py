"""Limits and validation over real HTTP: 413 on size (declared or streamed), 422 naming the field
and the expected type, NaN and infinity refused, batch cap; nothing here may answer 500."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mlplug.testing.servers import RunningServer
from tests.serving.conftest import MAX_BATCH, MAX_BODY_BYTES, MAX_EXPLAIN_ROWS
from tests.serving.support import AUTH, fraud_records

MLPLUG = str(Path(sys.executable).with_name("mlplug"))

RECORD = fraud_records(1)[0]


def post(server: RunningServer, body: object = None, *, content: bytes | None = None, path: str = "/predict"):
    return httpx.post(server.url + path, json=body, content=content, headers=AUTH, timeout=30)


def test_declared_length_over_the_cap_is_413(server: RunningServer) -> None:
    response = post(server, content=b"{" + b" " * MAX_BODY_BYTES + b"}")
    assert response.status_code == 413
    assert str(MAX_BODY_BYTES) in response.json()["error"]


def test_streamed_body_over_the_cap_is_413(server: RunningServer) -> None:
    # No Content-Length (chunked): the server counts bytes as they arrive.
    def chunks() -> Iterator[bytes]:
        for _ in range(MAX_BODY_BYTES // 1024 + 4):
            yield b" " * 1024

    response = httpx.post(server.url + "/predict", content=chunks(), headers=AUTH, timeout=30)
    assert response.status_code == 413


def test_batch_over_the_cap_is_422(server: RunningServer) -> None:
    response = post(server, {"records": [RECORD] * (MAX_BATCH + 1)})
    assert response.status_code == 422
    body = response.json()
    assert f"{MAX_BATCH + 1} records" in body["error"] and f"at most {MAX_BATCH}" in body["error"]
    assert post(server, {"records": [RECORD] * MAX_BATCH}).status_code == 200


def test_explain_has_its_own_smaller_cap(server: RunningServer) -> None:
    response = post(server, {"records": [RECORD] * (MAX_EXPLAIN_ROWS + 1)}, path="/explain")
    assert response.status_code == 422 and "MLPLUG_MAX_EXPLAIN_ROWS" in response.json()["error"]


@pytest.mark.parametrize(
    ("change", "field", "expected"),
    [
        ({"amount": "twelve"}, "amount", "a finite number"),
        ({"amount": None}, "amount", "a finite number"),
        ({"hour": [1]}, "hour", "a finite number"),
        ({"merchant_category": {"a": 1}}, "merchant_category", "a string"),
        ({"card_present": "perhaps"}, "card_present", "a boolean (true/false or 0/1)"),
        ({"card_present": 2}, "card_present", "a boolean (true/false or 0/1)"),
    ],
)
def test_invalid_field_is_422_naming_field_and_type(server: RunningServer, change, field, expected) -> None:
    response = post(server, {**RECORD, **change})
    assert response.status_code == 422, response.text
    body = response.json()
    assert field in body["error"] and expected in body["error"]
    item = body["detail"][0]
    assert item["field"] == field and item["expected"] == expected and item["loc"][-1] == field


def test_errors_inside_a_batch_name_the_record(server: RunningServer) -> None:
    response = post(server, {"records": [RECORD, {**RECORD, "hour": "noon"}]})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "records", 1, "hour"]
    assert "records.1.hour" in response.json()["error"]


def test_missing_and_unknown_fields_are_named(server: RunningServer) -> None:
    missing = {k: v for k, v in RECORD.items() if k != "device_age_days"}
    response = post(server, missing)
    assert response.status_code == 422 and response.json()["detail"][0]["field"] == "device_age_days"
    response = post(server, {**RECORD, "amout": 3.0})
    assert response.status_code == 422 and response.json()["detail"][0]["field"] == "amout"
    assert "Extra inputs" in response.json()["error"]


@pytest.mark.parametrize("value", ["NaN", "nan", "inf", "-Infinity", "1e999"])
def test_nan_and_infinity_are_422(server: RunningServer, value: str) -> None:
    response = post(server, {**RECORD, "amount": value})
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "amount"


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_non_json_numbers_are_422(server: RunningServer, literal: bytes) -> None:
    body = b'{"amount": ' + literal + b', "merchant_category": "gas"}'
    response = post(server, content=body)
    assert response.status_code == 422


@pytest.mark.parametrize(
    "content",
    [b"", b"   ", b"{", b"[]", b"null", b"42", b'"text"', b'{"records": []}', b'{"records": [1, 2]}',
     b'{"records": {}}', b"\xff\xfe", b'{"records": [' + b"[" * 2000 + b"]" * 2000 + b"]}"],
)  # fmt: skip
def test_malformed_bodies_are_422_never_500(server: RunningServer, content: bytes) -> None:
    response = post(server, content=content)
    assert response.status_code == 422, response.text
    assert "error" in response.json()


def test_flags_take_0_and_1_and_nothing_else_is_coerced(server: RunningServer) -> None:
    assert post(server, {**RECORD, "card_present": 1, "country_mismatch": 0}).status_code == 200
    # The published schema is the contract: a number as a string, a category as a number
    # or a flag as a word are client bugs, answered with the field and the expected type.
    for change in ({"amount": "12.5"}, {"merchant_category": 7}, {"card_present": "yes"}, {"hour": True}):
        response = post(server, {**RECORD, **change})
        assert response.status_code == 422, change
        assert response.json()["detail"][0]["field"] == next(iter(change))


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("MLPLUG_WRITE_TIMEOUT", "0", "MLPLUG_WRITE_TIMEOUT='0': Input should be greater than 0"),
        ("MLPLUG_MAX_CONNECTIONS", "many", "MLPLUG_MAX_CONNECTIONS='many': Input should be a valid integer"),
    ],
)
def test_an_unusable_serving_setting_is_one_line_from_the_cli(
    tmp_path: Path, variable: str, value: str, message: str
) -> None:
    env = {
        **os.environ,
        "MLPLUG_HOME": str(tmp_path / "home"),
        "MLPLUG_LOAD_PLUGINS": "fraud",
        variable: value,
    }
    out = subprocess.run(
        [MLPLUG, "serve", "fraud", "--insecure"], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("error: invalid settings: ") and message in line
