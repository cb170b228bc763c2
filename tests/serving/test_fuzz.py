"""Schema-driven fuzzing of the OpenAPI spec (schemathesis) against the running server.

Every operation gets up to 50 generated requests that fit the spec, and the POST operations
up to 50 that break it, all with the API key. Each answer must conform to the spec (status
code, content type, body schema; invalid input rejected with a 4xx) and none may be a 500.
The fraud schema's real field names and types drive the generated bodies.

Hypothesis is driven here directly rather than through ``schema.parametrize()``, whose lazy
fixture loader does not run under pytest 9.
"""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from mlplug.testing.servers import RunningServer
from tests.serving.support import AUTH

OPERATIONS = [
    ("POST", "/predict"),
    ("POST", "/explain"),
    ("GET", "/model"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
]
CASES = [(m, p, GenerationMode.POSITIVE) for m, p in OPERATIONS] + [
    (m, p, GenerationMode.NEGATIVE) for m, p in OPERATIONS if m == "POST"
]


def test_every_operation_is_fuzzed(server: RunningServer) -> None:
    paths = httpx.get(f"{server.url}/openapi.json").json()["paths"]
    assert {(m.upper(), p) for p, ops in paths.items() for m in ops} == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=[f"{m} {p} {g.value}" for m, p, g in CASES])
def test_fuzzing_finds_no_server_error(
    server: RunningServer, method: str, path: str, mode: GenerationMode
) -> None:
    operation = schemathesis.openapi.from_url(f"{server.url}/openapi.json")[path][method]

    # The key is fixed, not generated: negative cases must break the request, not the auth.
    @given(case=operation.as_strategy(generation_mode=mode, headers=AUTH))
    @settings(
        max_examples=50,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case) -> None:  # type: ignore[no-untyped-def]
        case.call_and_validate(base_url=server.url, headers=AUTH, timeout=30)

    check()
    assert "Exception in ASGI application" not in server.log.read_text()
