"""The baseline HTTP service as a real uvicorn process: contract, validation, clean stop."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

httpx = pytest.importorskip("httpx", reason="run: pip install -r requirements/reference.txt")

from reference_system.serving.app import parse_server_timing  # noqa: E402
from reference_system.serving.services import SentimentService  # noqa: E402


@pytest.fixture(scope="module")
def baseline(artifacts: object, request: pytest.FixtureRequest) -> Iterator[SentimentService]:
    profile = request.config.getoption("--reference-profile")
    with SentimentService("baseline", profile=profile) as service:
        yield service


def test_predict_answers_labels_scores_and_server_timing(baseline: SentimentService) -> None:
    with httpx.Client(base_url=baseline.url) as client:
        r = client.post("/predict", json={"texts": ["A triumph.", "A tedious, lifeless chore."]})
    assert r.status_code == 200
    body = r.json()
    assert body["model"] == "torch-fp32"
    assert body["labels"] == [1, 0]
    assert all(0 <= s <= 1 for s in body["scores"])
    assert body["cached"] == [False, False]
    stages = parse_server_timing(r.headers["server-timing"])
    assert set(stages) == {"inference", "postprocess"}
    assert stages["inference"] > 0


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        ({"texts": []}, "texts"),
        ({"texts": ["x"] * 33}, "texts"),
        ({"texts": ["   "]}, "texts[0] has 3 characters"),
        ({"texts": ["a" * 2001]}, "texts[0] has 2001 characters"),
        ({"texts": [1, 2]}, "texts"),
        ({"text": "a fine film"}, "text"),
        ({"texts": ["ok"], "extra": 1}, "extra"),
    ],
)
def test_bad_input_is_a_422_naming_the_field_and_the_service_keeps_serving(
    baseline: SentimentService, payload: dict[str, object], needle: str
) -> None:
    with httpx.Client(base_url=baseline.url) as client:
        r = client.post("/predict", json=payload)
        assert r.status_code == 422
        assert needle in r.text
        assert client.get("/healthz").status_code == 200


def test_a_body_that_is_not_json_is_a_422(baseline: SentimentService) -> None:
    with httpx.Client(base_url=baseline.url) as client:
        r = client.post(
            "/predict", content=b"{not json", headers={"content-type": "application/json"}
        )
    assert r.status_code == 422


def test_stopping_the_service_leaves_no_process_or_temp_dir(artifacts: object) -> None:
    service = SentimentService("baseline").start()
    pid, tmp = service.pid, Path(service.tmpdir)
    service.stop()
    assert pid is not None
    assert not Path(f"/proc/{pid}").exists()
    assert not tmp.exists()
    assert not os.path.exists(service.log_path)


def test_a_dead_front_refuses_connections_at_once(artifacts: object) -> None:
    # The listening socket is bound in this process and handed to the child; if this process
    # kept its copy, a dead front's port would still accept connections and never answer.
    import signal
    import time

    service = SentimentService("baseline").start()
    try:
        assert service.pid is not None
        os.killpg(service.pid, signal.SIGKILL)
        assert service.proc is not None
        service.proc.wait(timeout=10)
        began = time.monotonic()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{service.url}/healthz", timeout=5.0)
        assert time.monotonic() - began < 1.0
    finally:
        service.stop()


def test_the_triton_front_answers_a_miss_before_it_writes_the_cache() -> None:
    """A seam test with fakes for Triton and Redis: `predict` returns the answer while the
    cache write has not run yet (a SET that never finishes would otherwise hold the client),
    and the write it hands back stores exactly the misses."""
    import asyncio

    import numpy as np

    from reference_system.serving.backends import AsyncOptimisedBackend

    class Triton:
        url = "fake:0"

        async def ready(self) -> bool:
            return True

        async def infer(self, feeds: dict[str, Any]) -> Any:
            return np.array([[0.0, 1.0]] * len(feeds["ids"]), dtype=np.float32)

    class Cache:
        def __init__(self) -> None:
            self.stored: list[str] = []
            self.release = asyncio.Event()

        async def warm(self) -> None:
            pass

        async def get_many(self, texts: list[str]) -> list[Any]:
            return [None] * len(texts)

        async def put_many(self, texts: list[str], labels: list[int], logits: Any) -> None:
            await self.release.wait()  # a Redis that is slow to acknowledge
            self.stored.extend(texts)

    async def run() -> None:
        cache = Cache()
        backend = AsyncOptimisedBackend(
            lambda texts: {"ids": np.zeros((len(texts), 4), dtype=np.int64)},
            lambda: (Triton(), cache),
        )
        await backend.start()
        answer, write = await asyncio.wait_for(backend.predict(["a", "b"]), timeout=2)
        assert answer.labels == [1, 1]
        assert answer.cached == [False, False]
        assert cache.stored == []  # answered before the write
        assert write is not None
        cache.release.set()
        await asyncio.wait_for(write(), timeout=2)
        assert cache.stored == ["a", "b"]

    asyncio.run(run())
