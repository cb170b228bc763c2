"""Ports for ``ray start``: Ray refuses a node whose worker range covers one of its own ports."""

from __future__ import annotations

import pytest

from mlplug import ray_node


def test_the_worker_range_skips_a_draw_that_covers_a_component_port(monkeypatch: pytest.MonkeyPatch) -> None:
    # The draws of the CI failure: a node manager port inside the first worker range drawn.
    draws = iter([52141, 61000])
    monkeypatch.setattr(ray_node, "free_port", lambda: next(draws))

    first = ray_node._worker_range(taken={52173, 33327})

    assert first == 61000


def test_the_worker_range_stays_below_the_last_port(monkeypatch: pytest.MonkeyPatch) -> None:
    draws = iter([65530, 40000])
    monkeypatch.setattr(ray_node, "free_port", lambda: next(draws))

    assert ray_node._worker_range(taken=set()) == 40000


def test_the_ports_a_role_names_count_as_taken() -> None:
    assert ray_node._ports_in(["--head", "--port", "33327", "--include-dashboard", "false"]) == {33327}
    assert ray_node._ports_in(["--address", "127.0.0.1:6380"]) == {6380}


def test_component_ports_are_distinct(monkeypatch: pytest.MonkeyPatch) -> None:
    draws = iter([5000, 5000, 5001, 5002])
    monkeypatch.setattr(ray_node, "free_port", lambda: next(draws))

    assert ray_node._distinct_free_ports(3) == [5000, 5001, 5002]
