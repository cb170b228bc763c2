"""The app in this process (uvicorn in a thread, real HTTP): the traffic observer hook, readiness
while draining, the DataFrame path for models without ``predict_proba_rows``, and the hot swap's
refusal of a version that changes the request contract."""

from __future__ import annotations

import re
import threading
import time

import httpx
import numpy as np
import pytest

import mlplug
from mlplug.registry import Registry
from mlplug.schema import Column, Role, Schema
from mlplug.serving.app import create_app
from mlplug.serving.config import ServeSettings
from mlplug.serving.observe import ServingContext, TrafficBatch
from mlplug.storage import Store
from mlplug.testing.servers import app_in_thread
from tests.serving.support import register_toy
from tests.toy_task import ConstantModel, ToyTask


class Toys:
    @mlplug.hookimpl
    def register_tasks(self, register):  # type: ignore[no-untyped-def]
        register(ToyTask("toy"))


class Recorder:
    def __init__(self, context: ServingContext, delay: float = 0.0) -> None:
        self.context = context
        self.delay = delay
        self.batches: list[TrafficBatch] = []
        self.closed = False
        self.done = threading.Event()

    def observe(self, batch: TrafficBatch) -> None:
        time.sleep(self.delay)
        self.batches.append(batch)
        if len(self.batches) >= 3:
            self.done.set()

    def close(self) -> None:
        self.closed = True


class Broken:
    def observe(self, batch: TrafficBatch) -> None:
        raise RuntimeError("observer bug")

    def close(self) -> None:
        raise RuntimeError("close bug")


@pytest.fixture
def toy_store(register_plugin, mlplug_store: Store) -> Registry:
    register_plugin(Toys(), "toys")
    registry = Registry(mlplug_store)
    v1 = register_toy(registry, rate=0.25)
    registry.promote("toy", v1.version)
    return registry


def settings(**extra: object) -> ServeSettings:
    return ServeSettings(task="toy", insecure=True, reload_interval=0, **extra)  # type: ignore[arg-type]


def test_register_traffic_observers_sees_every_prediction_off_the_request_path(
    toy_store, register_plugin
) -> None:
    made: list[Recorder] = []

    class Observers:
        @mlplug.hookimpl
        def register_traffic_observers(self, register):  # type: ignore[no-untyped-def]
            register("recorder", lambda context: made.append(Recorder(context)) or made[-1])
            register("other-task-only", lambda context: None if context.task == "toy" else Broken())
            register("broken", lambda context: Broken())

    register_plugin(Observers(), "observers")
    app = create_app(settings())
    with app_in_thread(app) as url:
        for body in ({"x": 1.0}, {"x": 2.0}, {"records": [{"x": 3.0}, {"x": -1.0}]}):
            assert httpx.post(f"{url}/predict", json=body).status_code == 200
        assert made[0].done.wait(10)
        metrics = httpx.get(f"{url}/metrics").text
    recorder = made[0]
    assert recorder.context.task == "toy" and recorder.context.version.version == 1
    assert recorder.closed  # closed at shutdown, after draining
    first, _, batch = recorder.batches
    assert first.features == ("x",) and first.rows == [[1.0]] and first.version == 1
    assert batch.rows == [[3.0], [-1.0]] and batch.proba.shape == (2, 2)
    assert np.allclose(batch.proba[:, 1], 0.25) and batch.predictions == ["no", "no"]
    assert batch.received_at > 0 and batch.latency_seconds >= 0
    assert 'mlplug_observer_errors_total{observer="broken"} 3.0' in metrics


def test_a_slow_observer_never_delays_predictions(toy_store, register_plugin) -> None:
    made: list[Recorder] = []

    class Slow:
        @mlplug.hookimpl
        def register_traffic_observers(self, register):  # type: ignore[no-untyped-def]
            register("slow", lambda context: made.append(Recorder(context, delay=0.5)) or made[-1])

    register_plugin(Slow(), "slow")
    app = create_app(settings(observe_queue=2))
    with app_in_thread(app) as url, httpx.Client() as client:
        started = time.perf_counter()
        for i in range(20):
            assert client.post(f"{url}/predict", json={"x": float(i)}).status_code == 200
        elapsed = time.perf_counter() - started
        metrics = client.get(f"{url}/metrics").text
    assert elapsed < 2.0  # 20 batches x 0.5 s would take 10 s if predict waited
    dropped = float(re.search(r"^mlplug_observer_dropped_total (\S+)$", metrics, re.M).group(1))  # type: ignore[union-attr]
    assert dropped >= 15


def test_readiness_is_false_while_draining(toy_store) -> None:
    app = create_app(settings())
    with app_in_thread(app) as url:
        assert httpx.get(f"{url}/readyz").json() == {"status": "ready", "version": 1}
        app.state.serving.lifecycle.start_draining("test")
        response = httpx.get(f"{url}/readyz")
        assert response.status_code == 503 and response.json() == {"status": "draining"}
        assert "mlplug_ready 0.0" in httpx.get(f"{url}/metrics").text
        assert httpx.get(f"{url}/healthz").status_code == 200  # alive, just not taking traffic


def test_models_without_a_row_fast_path_are_served_from_a_frame(toy_store) -> None:
    app = create_app(settings())
    predictor = app.state.serving.holder.current.predictor
    assert not predictor.fast_path
    frame = predictor.frame([[1.5], [float("nan")]])
    assert list(frame.columns) == ["x"] and frame["x"].dtype == np.float64
    with app_in_thread(app) as url:
        answer = httpx.post(f"{url}/predict", json={"records": [{"x": 1.0}, {"x": 2.0}]}).json()
    assert [p["probability"] for p in answer["predictions"]] == [0.25, 0.25]


def test_a_version_with_other_features_is_refused_and_the_old_one_kept(toy_store) -> None:
    app = create_app(settings())
    holder = app.state.serving.holder
    wider = Schema(
        features=(Column("x", Role.NUMERIC), Column("z", Role.CATEGORICAL)), target="y", classes=("no", "yes")
    )
    v2 = register_toy(toy_store, rate=0.75, schema=wider)
    toy_store.promote("toy", v2.version)
    assert holder.refresh() == "incompatible"
    assert holder.current.version.version == 1
    assert "different features" in (holder.status.last_error or "")
    assert holder.refresh() == "unchanged"  # refused once, not on every poll

    v3 = register_toy(toy_store, rate=0.5)
    toy_store.promote("toy", v3.version)
    assert holder.refresh() == "swapped"
    assert holder.current.version.version == 3
    assert holder.current.predictor.proba([[0.0]])[0, 1] == pytest.approx(0.5)


def test_a_refused_version_leaves_the_served_one_unconfirmed_until_stale(toy_store) -> None:
    app = create_app(ServeSettings(task="toy", insecure=True, reload_interval=1, max_staleness=60))
    state = app.state.serving
    holder = state.holder
    assert holder.refresh() == "unchanged" and state.staleness() is None
    wider = Schema(
        features=(Column("x", Role.NUMERIC), Column("z", Role.CATEGORICAL)), target="y", classes=("no", "yes")
    )
    toy_store.promote("toy", register_toy(toy_store, rate=0.75, schema=wider).version)
    assert holder.refresh() == "incompatible"
    confirmed = holder.status.confirmed_at
    assert holder.refresh() == "unchanged" and holder.status.confirmed_at == confirmed
    assert "different features" in (holder.status.last_error or "")
    holder.status.confirmed_at -= 61  # a minute later, as seen by readiness
    assert not state.ready and "different features" in (state.staleness() or "")


def test_a_pinned_version_is_not_followed(toy_store) -> None:
    v2 = register_toy(toy_store, rate=0.75)
    app = create_app(settings(model="1"))
    holder = app.state.serving.holder
    assert not holder.follows_alias
    toy_store.promote("toy", v2.version)
    assert holder.current.version.version == 1


class ExplodingModel(ConstantModel):
    def predict_proba(self, X):  # type: ignore[no-untyped-def]  # noqa: N803
        if (X["x"] == 13.0).any():
            raise RuntimeError("model bug on 13")
        return super().predict_proba(X)


class BrokenTask(ToyTask):
    def load_model(self, path):  # type: ignore[no-untyped-def]
        return ExplodingModel(0.5)

    def explain(self, model, data, rows=100):  # type: ignore[no-untyped-def]
        raise RuntimeError("explainer bug")


def test_a_bug_answers_a_json_500_without_internals(register_plugin, mlplug_store: Store) -> None:
    class Broken:
        @mlplug.hookimpl
        def register_tasks(self, register):  # type: ignore[no-untyped-def]
            register(BrokenTask("broken"))

    register_plugin(Broken(), "broken")
    registry = Registry(mlplug_store)
    registry.promote("broken", register_toy(registry, rate=0.5, name="broken").version)
    app = create_app(ServeSettings(task="broken", insecure=True, reload_interval=0))
    with app_in_thread(app) as url:
        assert httpx.post(f"{url}/predict", json={"x": 1.0}).status_code == 200
        for path in ("/predict", "/explain"):
            response = httpx.post(f"{url}{path}", json={"x": 13.0})
            assert response.status_code == 500
            assert response.json() == {"error": "internal server error; the server log has the details"}
            assert "bug" not in response.text
        assert httpx.post(f"{url}/predict", json={"x": 2.0}).status_code == 200  # still serving
        metrics = httpx.get(f"{url}/metrics").text
    assert 'mlplug_request_errors_total{reason="server_error",route="/predict"} 1.0' in metrics


class SlowModel(ConstantModel):
    def predict_proba(self, X):  # type: ignore[no-untyped-def]  # noqa: N803
        time.sleep(0.4)  # a transformer on a busy CPU
        return super().predict_proba(X)


class SlowTask(ToyTask):
    def load_model(self, path):  # type: ignore[no-untyped-def]
        return SlowModel(0.5)


def test_a_slow_model_predicts_in_a_thread_so_health_checks_still_answer(
    register_plugin, mlplug_store
) -> None:
    class Slow:
        @mlplug.hookimpl
        def register_tasks(self, register):  # type: ignore[no-untyped-def]
            register(SlowTask("slow"))

    register_plugin(Slow(), "slow-task")
    registry = Registry(mlplug_store)
    registry.promote("slow", register_toy(registry, rate=0.5, name="slow").version)
    app = create_app(ServeSettings(task="slow", insecure=True, reload_interval=0))
    assert not app.state.serving.holder.current.predictor.inline(1)
    with app_in_thread(app) as url:
        predicting = threading.Thread(
            target=httpx.post, args=(f"{url}/predict",), kwargs={"json": {"x": 1.0}}
        )
        predicting.start()
        time.sleep(0.1)
        started = time.perf_counter()
        assert httpx.get(f"{url}/healthz").status_code == 200
        assert time.perf_counter() - started < 0.25  # not stuck behind the 0.4 s prediction
        predicting.join()
