"""Where state goes when MLPLUG_HOME is not set: the checkout's .mlplug/, found from any
directory inside it, else ~/.mlplug; and the embedded Prefect database goes there too."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlplug.cli import keep_embedded_prefect_under_home
from mlplug.settings import Settings, default_home


@pytest.fixture
def unset_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.delenv("MLPLUG_HOME", raising=False)
    user_home = tmp_path / "user"
    user_home.mkdir()
    monkeypatch.setenv("HOME", str(user_home))
    return user_home


def test_commands_inside_a_checkout_use_its_state_directory(unset_home, tmp_path, monkeypatch) -> None:
    checkout = tmp_path / "checkout"
    (checkout / ".mlplug").mkdir(parents=True)
    deep = checkout / "plugins" / "fraud"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert Settings().home == (checkout / ".mlplug").resolve()
    assert Settings().store_url == (checkout / ".mlplug" / "store").resolve().as_uri()


def test_elsewhere_state_goes_to_the_user_home(unset_home, tmp_path, monkeypatch) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert Settings().home == (unset_home / ".mlplug").resolve()


def test_mlplug_home_wins(tmp_path, monkeypatch) -> None:
    (tmp_path / ".mlplug").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLPLUG_HOME", str(tmp_path / "explicit"))
    assert Settings().home == (tmp_path / "explicit").resolve()


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="chown needs root")
def test_a_state_directory_owned_by_someone_else_is_passed_over(unset_home, tmp_path) -> None:
    planted = tmp_path / "shared" / ".mlplug"
    planted.mkdir(parents=True)
    os.chown(planted, 4242, 4242)
    assert default_home(tmp_path / "shared") == unset_home / ".mlplug"


def test_the_embedded_prefect_database_follows_mlplug_home(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MLPLUG_HOME", str(tmp_path / "state"))
    environ: dict[str, str] = {}
    keep_embedded_prefect_under_home(environ)
    url = environ["PREFECT_SERVER_DATABASE_CONNECTION_URL"]
    assert url == f"sqlite+aiosqlite:///{(tmp_path / 'state').resolve() / 'prefect' / 'prefect.db'}"
    for given in (
        {"PREFECT_API_URL": "http://127.0.0.1:4200/api"},
        {"PREFECT_SERVER_DATABASE_CONNECTION_URL": "x"},
    ):
        kept = dict(given)
        keep_embedded_prefect_under_home(kept)
        assert kept == given  # a server or a database the user chose is left alone
