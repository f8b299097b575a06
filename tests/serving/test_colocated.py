"""The co-located front (INT8 model in the uvicorn process, Redis cache) as a real process."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

httpx = pytest.importorskip("httpx", reason="run: pip install -r requirements/reference.txt")

from reference_system.serving.app import parse_server_timing  # noqa: E402
from reference_system.serving.gcstats import GcPauses  # noqa: E402
from reference_system.serving.services import SentimentService  # noqa: E402


@pytest.fixture(scope="module")
def colocated(
    artifacts: Any, redis_url: str, request: pytest.FixtureRequest
) -> Iterator[SentimentService]:
    profile = request.config.getoption("--reference-profile")
    with SentimentService("colocated", profile=profile, extra=["--redis-url", redis_url]) as s:
        yield s


def test_a_miss_runs_the_model_in_the_front_and_the_repeat_is_a_hit(
    colocated: SentimentService, int8: Any
) -> None:
    text = f"A quietly devastating, beautifully acted film ({time.time_ns()})."
    with httpx.Client(base_url=colocated.url, timeout=10) as client:
        first = client.post("/predict", json={"texts": [text]})
        assert first.status_code == 200, first.text
        # The cache entry is written after the response is sent: wait for it, boundedly.
        for _ in range(100):
            second = client.post("/predict", json={"texts": [text]})
            if second.json()["cached"] == [True]:
                break
            time.sleep(0.02)
        metrics = client.get("/metrics").json()
    body = first.json()
    assert body["model"] == "ort-int8-dynamic@colocated"
    assert body["cached"] == [False]
    assert body["labels"] == int8.predict([text]).labels.tolist()  # the same INT8 model
    assert set(parse_server_timing(first.headers["server-timing"])) == {
        "cache",
        "tokenise",
        "inference",
        "postprocess",
    }
    assert second.json()["cached"] == [True]
    assert second.json()["labels"] == body["labels"]
    assert "inference" not in parse_server_timing(second.headers["server-timing"])
    assert metrics["cache_hits"] >= 1
    assert metrics["cache_misses"] >= 1
    assert metrics["settings"] == {
        "intra_op_threads": 1,
        "allow_spinning": True,
        "inference": "inline",
        "keep_warm_ms": 0.0,
    }
    assert metrics["keep_warm_runs"] == 0  # off unless asked for
    assert metrics["gc"]["frozen"] > 10_000  # the start-up heap, frozen (see gcstats)


def test_batches_and_bad_input(colocated: SentimentService) -> None:
    with httpx.Client(base_url=colocated.url, timeout=10) as client:
        ok = client.post("/predict", json={"texts": ["A triumph.", "A tedious, lifeless chore."]})
        bad = client.post("/predict", json={"texts": ["   "]})
        still = client.post("/predict", json={"texts": ["Fine."]})
    assert ok.status_code == 200
    assert ok.json()["labels"] == [1, 0]
    assert bad.status_code == 422
    assert "texts[0]" in bad.text
    assert still.status_code == 200


def test_a_bad_inference_mode_is_refused_by_name(tmp_path: Path) -> None:
    from reference_system.serving.colocated import ColocatedBackend

    with pytest.raises(ValueError, match=r"'gpu'.*Valid: inline, thread"):
        ColocatedBackend(tmp_path, tmp_path, lambda: None, inference="gpu")
    with pytest.raises(ValueError, match=r"intra_op_threads.*got 0"):
        ColocatedBackend(tmp_path, tmp_path, lambda: None, intra_op_threads=0)
    with pytest.raises(ValueError, match=r"keep_warm_ms must be 0 \(off\) to 1000, got -1"):
        ColocatedBackend(tmp_path, tmp_path, lambda: None, keep_warm_ms=-1)


def test_keep_warm_runs_the_model_only_while_it_is_idle_between_requests(
    artifacts: Any, redis_url: str
) -> None:
    """--keep-warm-ms 20: about one run per 20 ms of idleness while requests keep coming
    (within a second of the last one), none while requests keep the model busier than that,
    and none at all once traffic stops."""
    extra = ["--redis-url", redis_url, "--keep-warm-ms", "20"]
    with (
        SentimentService("colocated", profile=artifacts.profile, extra=extra) as service,
        httpx.Client(base_url=service.url, timeout=10) as client,
    ):

        def runs() -> int:
            return int(client.get("/metrics").json()["keep_warm_runs"])

        time.sleep(0.5)
        before_traffic = runs()
        t0 = time.monotonic()
        for i in range(40):  # a new text every few ms: the model is never idle for 20 ms
            r = client.post("/predict", json={"texts": [f"A fine film ({t0}-{i})."]})
            assert r.status_code == 200
            assert r.json()["cached"] == [False]
        busy_s = time.monotonic() - t0
        after_busy = runs()
        time.sleep(0.5)  # idle, but within a second of the last request: kept warm
        after_idle = runs()
        time.sleep(1.5)  # traffic stopped: the loop goes quiet
        quiet_from = runs()
        time.sleep(1.0)
        quiet = runs() - quiet_from
        settings = client.get("/metrics").json()["settings"]
    assert settings["keep_warm_ms"] == 20.0
    assert before_traffic == 0  # no traffic yet: never warmed
    assert after_busy - before_traffic <= 2 + busy_s / 0.02 * 0.25, (after_busy, busy_s)
    assert 10 <= after_idle - after_busy <= 28, after_idle - after_busy  # 0.5 s / 20 ms = 25
    assert quiet == 0


def test_gc_pauses_are_timed_per_generation() -> None:
    pauses = GcPauses().install()
    try:
        gc.collect()
        gc.collect(0)
    finally:
        pauses.uninstall()
    snap = pauses.snapshot()
    assert snap["collections"][2] >= 1
    assert snap["collections"][0] >= 1
    assert snap["max_ms"][2] > 0
    assert snap["total_ms"][2] >= snap["max_ms"][2]
    assert snap["recent"][-1]["generation"] in (0, 2)
    gc.collect()
    assert pauses.snapshot()["collections"] == snap["collections"]  # uninstalled: not counted


def test_a_collection_inside_a_snapshot_neither_deadlocks_nor_loses_its_pause() -> None:
    # gen0 threshold 1: nearly every allocation in `snapshot` starts a collection, in the
    # thread that holds the lock (a /metrics request once hung this way, for ever).
    import threading

    pauses = GcPauses().install()
    for _ in range(70):
        gc.collect(0)  # fill `recent`: snapshot then builds 64 dicts
    done, counted = threading.Event(), []

    def read() -> None:
        for _ in range(500):
            counted.append(sum(pauses.snapshot()["collections"]))
        done.set()

    threshold = gc.get_threshold()
    gc.set_threshold(1)
    try:
        threading.Thread(target=read, daemon=True).start()
        finished = done.wait(20)
    finally:
        gc.set_threshold(*threshold)
        pauses.uninstall()
    assert finished, f"snapshot deadlocked after {len(counted)} of 500 reads"
    assert counted == sorted(counted), counted[::50]  # no pause lost or counted twice
    assert counted[-1] > counted[0] >= 70, counted[::50]  # and the new ones were counted
