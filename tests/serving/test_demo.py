"""The serving step of `mlplug demo`: the champion is served, loaded, and the server stopped."""

from __future__ import annotations

import psutil
import pytest

from mlplug.cli.run import _serve_and_load
from tests.serving.support import FraudStore


def test_demo_serves_the_champion_loads_it_and_stops_it(
    fraud_store: FraudStore, tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLPLUG_STORE", fraud_store.url)
    monkeypatch.setenv("MLPLUG_HOME", str(tmp_path))
    monkeypatch.setenv("MLPLUG_LOAD_PLUGINS", "fraud")
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    _serve_and_load("fraud", 0.5)
    out = capsys.readouterr().out
    assert "serving the champion" in out and "ok/s   errors 0" in out and "p99" in out
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= before  # the server is gone
