"""``mlplug loadtest``: bounded in time and count, rate-limited on request, measuring a real server,
counting refused connections, timeouts and error statuses, parsing chunked answers."""

from __future__ import annotations

import json
import socket
import time

import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route
from typer.testing import CliRunner

from mlplug.cli import app as cli
from mlplug.loadtest import LoadTestConfig, LoadTestError, parse_server_timing, run_load_test
from mlplug.testing.servers import LOOPBACK, RunningServer, app_in_thread, free_port
from tests.serving.support import API_KEY, AUTH, fraud_records

BODIES = [json.dumps(r).encode() for r in fraud_records(16)]


def test_measures_a_real_server(server: RunningServer) -> None:
    config = LoadTestConfig(
        url=f"{server.url}/predict", concurrency=4, duration=1.0, bodies=BODIES, headers=AUTH, warmup=0.2
    )
    started = time.monotonic()
    result = run_load_test(config)
    assert time.monotonic() - started < 5
    assert result.ok > 50 and result.error_count == 0 and result.ok == result.requests
    summary = result.to_dict()
    assert 0 < summary["latency_ms"]["p50"] <= summary["latency_ms"]["p95"] <= summary["latency_ms"]["p99"]
    assert summary["throughput_rps"] == pytest.approx(result.ok / result.duration, rel=0.01)
    assert "p99" in result.summary()


def test_reports_time_outside_the_model_from_server_timing(server: RunningServer) -> None:
    config = LoadTestConfig(
        url=f"{server.url}/predict", concurrency=4, duration=1.0, bodies=BODIES, headers=AUTH, warmup=0.2
    )
    result = run_load_test(config)
    assert result.ok > 50 and result.error_count == 0
    # Every answer named its queue and model call; the model call happened within each
    # request's latency, so what is left outside it is positive for every request.
    model = result.server_timing_ms["model"]
    assert len(model) == len(result.latencies_ms) == result.ok and (model > 0).all()
    assert (result.server_timing_ms["queue"] >= 0).all()
    assert len(result.outside_model_ms) == result.ok and (result.outside_model_ms > 0).all()
    summary = result.to_dict()
    assert set(summary["server_timing_ms"]) == {"queue", "model"}
    outside = summary["outside_model_ms"]
    assert outside["count"] == result.ok
    assert 0 < outside["p50"] <= outside["p95"] <= outside["p99"] <= outside["max"]
    assert outside["p50"] <= summary["latency_ms"]["p50"]
    assert "outside model ms" in result.summary() and "server model ms" in result.summary()


def test_server_timing_values_are_parsed_as_the_w3c_spec_writes_them() -> None:
    value = 'cache;desc="Cache Read";dur=23.2, db;dur=53, app;dur=47.2, miss, total;dur="9.5"'
    assert parse_server_timing(value) == {"cache": 23.2, "db": 53.0, "app": 47.2, "total": 9.5}
    assert parse_server_timing("model;dur=x, model;dur=2, model;dur=3") == {"model": 2.0}
    assert parse_server_timing("") == {}


def test_answers_without_server_timing_report_none() -> None:
    calls = {"n": 0}

    async def sometimes(request):  # type: ignore[no-untyped-def]
        calls["n"] += 1  # every other answer names its model call
        headers = {"Server-Timing": "model;dur=0.5"} if calls["n"] % 2 else {}
        return PlainTextResponse("ok", headers=headers)

    async def never(request):  # type: ignore[no-untyped-def]
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/sometimes", sometimes), Route("/never", never)])
    with app_in_thread(app) as url:
        none = run_load_test(LoadTestConfig(url=f"{url}/never", concurrency=2, duration=0.5))
        half = run_load_test(LoadTestConfig(url=f"{url}/sometimes", concurrency=1, duration=0.5))
    assert none.ok > 10 and none.server_timing_ms == {} and none.to_dict()["outside_model_ms"] is None
    assert "model ms" not in none.summary()
    model = half.server_timing_ms["model"]
    assert len(model) == half.ok and 0 < np.isnan(model).sum() < half.ok
    assert half.to_dict()["server_timing_ms"]["model"]["count"] == len(half.outside_model_ms)


def test_error_statuses_are_counted(server: RunningServer) -> None:
    result = run_load_test(
        LoadTestConfig(url=f"{server.url}/predict", concurrency=2, duration=0.5, bodies=BODIES)
    )
    assert result.ok == 0 and result.errors.get("HTTP 401", 0) == result.requests > 0


def test_rate_limits_the_load(server: RunningServer) -> None:
    result = run_load_test(LoadTestConfig(url=f"{server.url}/healthz", concurrency=4, duration=1.0, rate=50))
    assert 40 <= result.requests <= 55 and result.error_count == 0


def test_max_requests_bounds_the_count(server: RunningServer) -> None:
    result = run_load_test(
        LoadTestConfig(url=f"{server.url}/healthz", concurrency=3, duration=30, max_requests=25)
    )
    assert result.requests == 25


def test_refused_connections_are_errors_and_the_run_still_ends() -> None:
    config = LoadTestConfig(url=f"http://{LOOPBACK}:{free_port()}/predict", concurrency=2, duration=0.5)
    started = time.monotonic()
    result = run_load_test(config)
    assert time.monotonic() - started < 3
    assert result.ok == 0 and result.errors["connection refused"] > 0


def test_a_silent_server_times_out() -> None:
    with socket.socket() as listener:  # accepts connections (backlog) and never answers
        listener.bind((LOOPBACK, 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        config = LoadTestConfig(url=f"http://{LOOPBACK}:{port}/", concurrency=2, duration=0.8, timeout=0.3)
        started = time.monotonic()
        result = run_load_test(config)
    assert time.monotonic() - started < 3
    assert result.ok == 0 and result.errors["timeout"] >= 2


def test_chunked_answers_are_read() -> None:
    async def stream(request):  # type: ignore[no-untyped-def]
        return StreamingResponse(iter([b"x" * 10, b"y" * 5000, b"z"]), media_type="text/plain")

    with app_in_thread(Starlette(routes=[Route("/", stream)])) as url:
        result = run_load_test(LoadTestConfig(url=f"{url}/", concurrency=2, duration=0.5))
    assert result.ok > 10 and result.error_count == 0


@pytest.mark.parametrize(
    "bad",
    [
        {"concurrency": 0},
        {"concurrency": 5000},
        {"duration": 0},
        {"duration": 10_000},
        {"rate": 0},
        {"url": "ftp://host/x"},
        {"url": "http:///nohost"},
    ],
)
def test_unbounded_or_invalid_runs_are_refused(bad: dict) -> None:
    config = LoadTestConfig(**{"url": "http://127.0.0.1:1/", **bad})
    with pytest.raises(LoadTestError):
        run_load_test(config)


def test_cli_with_synthetic_records(server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLPLUG_API_KEY", API_KEY)
    monkeypatch.setenv("MLPLUG_LOAD_PLUGINS", "fraud")
    args = ["loadtest", f"{server.url}/predict", "--task", "fraud", "--batch", "4", "--duration", "0.5"]
    result = CliRunner().invoke(cli, [*args, "--concurrency", "2", "--warmup", "0", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["ok"] > 0 and summary["errors"] == 0

    monkeypatch.delenv("MLPLUG_API_KEY")
    result = CliRunner().invoke(cli, [*args, "--warmup", "0"])
    assert result.exit_code == 1 and "HTTP 401" in result.output
