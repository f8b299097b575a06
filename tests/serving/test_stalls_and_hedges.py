"""The injectable tail (``--stall-*``, ``POST /admin/stalls``) and the hedging client, on two
real co-located fronts (the session's ``colocated_replicas``)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import pytest

httpx = pytest.importorskip("httpx", reason="run: pip install -r requirements/reference.txt")

from reference_system.serving.app import parse_server_timing  # noqa: E402
from reference_system.serving.hedging import (  # noqa: E402
    HedgedClient,
    HttpReplicas,
    Refused,
    RollingPercentile,
)
from reference_system.serving.stalls import set_stalls, stalled  # noqa: E402


@pytest.fixture
def replicas(colocated_replicas: list[str]) -> Iterator[list[str]]:
    yield colocated_replicas
    for url in colocated_replicas:  # the next test starts without a tail
        set_stalls(url, share=0.0, ms=0.0)


def body(text: str) -> bytes:
    return json.dumps({"texts": [text]}).encode()


def test_a_stall_switched_on_at_run_time_delays_the_drawn_requests_and_shows_in_metrics(
    replicas: list[str],
) -> None:
    url = replicas[0]
    before = stalled(url)
    assert set_stalls(url, share=1.0, ms=60, seed=3) == {
        "share": 1.0,
        "ms": 60.0,
        "seed": 3,
        "stalled": before,
    }
    with httpx.Client(base_url=url, timeout=10) as client:
        t0 = time.perf_counter()
        slow = client.post("/predict", json={"texts": ["A fine film."]})
        slow_s = time.perf_counter() - t0
        set_stalls(url, share=0.0, ms=60)
        fast = client.post("/predict", json={"texts": ["A fine film."]})
    assert slow.status_code == fast.status_code == 200
    assert slow_s >= 0.06
    assert parse_server_timing(slow.headers["server-timing"])["stall"] == 60.0
    assert "stall" not in parse_server_timing(fast.headers["server-timing"])
    assert slow.json()["labels"] == fast.json()["labels"]  # stalled, then served as usual
    assert stalled(url) == before + 1


def test_the_same_seed_stalls_the_same_requests(replicas: list[str]) -> None:
    url = replicas[1]

    def pattern() -> list[bool]:
        set_stalls(url, share=0.3, ms=1, seed=42)
        marks = []
        with httpx.Client(base_url=url, timeout=10) as client:
            for i in range(30):
                r = client.post("/predict", json={"texts": [f"review {i}"]})
                marks.append("stall" in parse_server_timing(r.headers["server-timing"]))
        return marks

    first = pattern()
    assert first == pattern()
    assert 0 < sum(first) < 30


@pytest.mark.parametrize(
    ("settings", "detail"),
    [
        ({"share": 1.5}, "stall share 1.5 is not valid; expected a number from 0 to 1"),
        ({"ms": -5}, "stall ms -5 is not valid; expected milliseconds from 0 to 10000"),
        ({"seed": "x"}, "stall seed 'x' is not valid; expected an integer >= 0"),
        ({"speed": 1}, "expected an object with share, ms and/or seed"),
    ],
)
def test_bad_stall_settings_are_refused_by_name(
    replicas: list[str], settings: dict[str, object], detail: str
) -> None:
    r = httpx.post(f"{replicas[0]}/admin/stalls", json=settings, timeout=5)
    assert r.status_code == 422
    assert r.json()["error"] == "invalid_field"
    assert detail in r.json()["detail"]


def test_a_deeply_nested_stall_settings_body_is_a_422_not_a_500(replicas: list[str]) -> None:
    """``json.loads`` raises RecursionError on deep nesting: a JSON 4xx, and the front goes
    on serving."""
    nested = b"[" * 100_000 + b"]" * 100_000
    r = httpx.post(f"{replicas[0]}/admin/stalls", content=nested, timeout=10)
    assert r.status_code == 422
    assert r.json()["error"] == "invalid_json"
    assert "nests too deeply" in r.json()["detail"]
    assert httpx.post(f"{replicas[0]}/admin/stalls", json={"share": 0.0}, timeout=5).is_success


def test_the_admin_route_exists_only_with_stall_admin(colocated_url: str) -> None:
    r = httpx.post(f"{colocated_url}/admin/stalls", json={"share": 1.0}, timeout=5)
    assert r.status_code in (404, 405)
    assert httpx.get(f"{colocated_url}/metrics", timeout=5).json()["stalls"]["share"] == 0.0


def test_serve_refuses_bad_stall_options_with_the_value_and_the_range(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from reference_system.serving.serve import main

    with pytest.raises(SystemExit):
        main(["colocated", "--port", "1", "--stall-share", "2"])
    assert "stall share 2.0 is not valid; expected a number from 0 to 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["baseline", "--port", "1", "--stall-ms", "50"])
    assert "--stall-* options are for the colocated front only" in capsys.readouterr().err


def test_a_hedge_answers_past_a_stalled_replica_and_its_loser_is_closed(
    replicas: list[str],
) -> None:
    set_stalls(replicas[0], share=1.0, ms=2000)  # replica 0 stalls every request for 2 s
    http = HttpReplicas(replicas)
    client = HedgedClient(http.send, 2, delay=RollingPercentile(initial_ms=30))

    async def go() -> tuple[dict[str, object], float]:
        t0 = time.perf_counter()
        answer = await client.request(body("A quietly devastating film."))
        return answer, time.perf_counter() - t0

    try:
        answer, took_s = asyncio.run(go())
    finally:
        http.close()
    assert answer["labels"] in ([0], [1])
    assert took_s < 1.0  # answered by replica 1, not after replica 0's 2 s
    counts = client.counts()
    assert (counts["hedges"], counts["hedge_wins"], counts["cancelled"]) == (1, 1, 1)
    assert http.clients[0].aborted == 1  # the loser's connection was closed mid-request


def test_a_refused_request_is_not_hedged(replicas: list[str]) -> None:
    http = HttpReplicas(replicas)
    client = HedgedClient(http.send, 2, delay=RollingPercentile(initial_ms=1000))
    try:
        with pytest.raises(Refused, match="422"):
            asyncio.run(client.request(body("   ")))  # blank: the contract refuses it
    finally:
        http.close()
    counts = client.counts()
    assert (counts["hedges"], counts["failovers"], counts["errors"]) == (0, 0, 1)
