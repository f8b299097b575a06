"""Triton killed under the optimised front, mid open-loop run, and started again on its ports.

What a client sees: 503s (``Retry-After: 1``) while Triton is down, each within the request
deadline, never a 500 and never a hang; ``/healthz`` says 503 until Triton is back; the front
recovers by itself, without a restart. Loopback only; ~15 s of 20 rps.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

httpx = pytest.importorskip("httpx", reason="run: pip install -r requirements/reference.txt")
pytest.importorskip(
    "tritonclient.grpc",
    reason="tritonclient is not installed; run: pip install 'tritonclient[grpc]'",
)

from reference_system.predictors import BackendUnavailable  # noqa: E402
from reference_system.serving.app import _model_server_error  # noqa: E402
from reference_system.serving.loadgen_http import KeepAliveClient  # noqa: E402
from reference_system.serving.services import SentimentService  # noqa: E402
from reference_system.serving.triton_client import (  # noqa: E402
    TritonError,
    TritonTimeout,
    TritonUnavailable,
)
from reference_system.serving.triton_repo import write_model_repository  # noqa: E402
from reference_system.serving.triton_server import TritonServer, find_tritonserver  # noqa: E402

if TYPE_CHECKING:
    from reference_system.build import Artifacts

DEADLINE_MS = 1000.0
RATE_RPS = 20.0


@pytest.fixture(scope="module")
def triton(
    artifacts: Artifacts, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TritonServer]:
    try:
        find_tritonserver()
    except BackendUnavailable as exc:
        pytest.skip(str(exc))
    repo = write_model_repository(
        tmp_path_factory.mktemp("outage") / "repo", artifacts.onnx_int8_dynamic
    )
    with TritonServer(repo) as server:
        yield server


def _front(artifacts: Artifacts, triton: TritonServer, deadline_ms: float) -> SentimentService:
    # No Redis: every request is a miss and goes to Triton.
    extra = ["--triton-url", triton.grpc_url, "--deadline-ms", str(deadline_ms)]
    return SentimentService("optimised", profile=artifacts.profile, extra=extra)


@dataclass
class Sent:
    intended_s: float  # since the run's start
    status: int  # -1: no HTTP answer (a hang past the client's timeout, a reset)
    latency_s: float  # from the intended start (open loop: a late send counts)
    sent_to_answer_s: float
    done_s: float
    error: str = ""


def _open_loop(url: str, seconds: float, t0: float, out: list[Sent]) -> None:
    """`seconds` of Poisson-free, evenly spaced requests at RATE_RPS, each a new text."""
    client = KeepAliveClient(url, timeout_s=DEADLINE_MS / 1000 + 5)
    lock = threading.Lock()

    def one(k: int, intended: float) -> None:
        body = json.dumps({"texts": [f"A film, take {k} ({t0})."]}).encode()
        sent = time.monotonic()
        try:
            status, error = client.post("/predict", body).status, ""
        except OSError as exc:
            status, error = -1, repr(exc)
        done = time.monotonic()
        with lock:
            out.append(Sent(intended - t0, status, done - intended, done - sent, done - t0, error))

    with ThreadPoolExecutor(max_workers=32) as pool:
        for k in range(int(seconds * RATE_RPS)):
            intended = t0 + k / RATE_RPS
            time.sleep(max(0.0, intended - time.monotonic()))
            pool.submit(one, k, intended)
    client.close()


def _health(url: str) -> tuple[int, dict[str, Any]]:
    r = httpx.get(f"{url}/healthz", timeout=5)
    return r.status_code, r.json()


def test_triton_killed_mid_run_gives_503s_within_the_deadline_and_the_front_recovers(
    artifacts: Artifacts, triton: TritonServer, record_property: Any
) -> None:
    with _front(artifacts, triton, DEADLINE_MS) as front:
        sent: list[Sent] = []
        t0 = time.monotonic() + 0.2
        load = threading.Thread(target=_open_loop, args=(front.url, 16.0, t0, sent))
        load.start()
        time.sleep(max(0.0, t0 + 4.0 - time.monotonic()))
        killed_s = time.monotonic() - t0  # before the SIGKILL: requests fail as it lands
        triton.kill()
        time.sleep(0.5)
        health_down = _health(front.url)
        time.sleep(1.5)
        triton.restart()
        ready_s = time.monotonic() - t0
        # The front's channel reconnects with a backoff capped at 1 s: healthy within 3 s.
        while (health_up := _health(front.url))[0] != 200 and time.monotonic() - t0 < ready_s + 3:
            time.sleep(0.05)
        healthy_after_ready_s = time.monotonic() - t0 - ready_s
        load.join(timeout=60)
        assert not load.is_alive(), "the load generator hung"

    by_status: dict[int, int] = {}
    for s in sent:
        by_status[s.status] = by_status.get(s.status, 0) + 1
    failed = sorted((s for s in sent if s.status != 200), key=lambda s: s.intended_s)
    last_failure_s = failed[-1].done_s if failed else killed_s
    recovered_s = max(0.0, last_failure_s - ready_s)
    after = np.array([s.latency_s for s in sent if s.intended_s > last_failure_s]) * 1e3
    p99_after_ms = float(np.quantile(after, 0.99)) if after.size else float("nan")
    figures = {
        "requests": len(sent),
        "by_status": by_status,
        "outage_s": round(ready_s - killed_s, 2),
        "errors": len(failed),
        "slowest_error_ms": round(max((s.sent_to_answer_s for s in failed), default=0) * 1e3, 1),
        "recovered_after_ready_s": round(recovered_s, 2),
        "answered_after_recovery": int(after.size),
        "p99_after_recovery_ms": round(p99_after_ms, 1),
        "healthz_down": health_down,
        "healthz_up": health_up[0],
        "healthz_ok_after_ready_s": round(healthy_after_ready_s, 2),
    }
    print(f"\nTriton killed mid-run: {figures}")
    record_property("triton_outage", figures)

    assert len(sent) == int(16.0 * RATE_RPS), figures
    assert set(by_status) <= {200, 503, 504}, [s for s in sent if s.status not in (200, 503)]
    assert failed, f"Triton's death went unnoticed: {figures}"
    # Errors only while Triton was down (plus what was in flight when it died) and until the
    # front's channel reconnected: never before the kill, and bounded in number.
    assert all(s.done_s >= killed_s for s in failed), figures
    assert len(failed) <= RATE_RPS * (ready_s - killed_s + recovered_s) + 5, figures
    assert all(s.sent_to_answer_s <= DEADLINE_MS / 1000 + 0.5 for s in failed), figures
    assert recovered_s <= 3.0, figures  # gRPC's reconnect backoff is capped at 1 s
    assert health_down[0] == 503, figures
    assert health_down[1]["status"] == "unavailable"
    assert "not ready" in health_down[1]["detail"]
    assert health_up[0] == 200, figures
    assert after.size >= 3 * RATE_RPS, figures
    assert p99_after_ms <= 250, figures


def test_a_triton_call_past_the_deadline_is_a_504_and_the_front_stays_healthy(
    artifacts: Artifacts, triton: TritonServer
) -> None:
    with (
        _front(artifacts, triton, 0.2) as front,  # 0.2 ms: no Triton call is that fast
        httpx.Client(base_url=front.url, timeout=10) as client,
    ):
        r = client.post("/predict", json={"texts": [f"A film ({time.time_ns()})."]})
        health = client.get("/healthz")
    assert r.status_code == 504, r.text
    assert r.json()["error"] == "model_timeout"
    assert "exceeded its deadline of 0.2 ms" in r.json()["detail"]
    assert health.status_code == 200  # readiness is not held to the inference deadline


@pytest.mark.parametrize(
    ("exc", "status", "error"),
    [
        (TritonUnavailable("127.0.0.1:1", "connection refused"), 503, "model_unavailable"),
        (TritonTimeout("127.0.0.1:1", 0.05), 504, "model_timeout"),
        (TritonError("Triton call failed (StatusCode.INVALID_ARGUMENT): bad"), 502, "model_error"),
    ],
)
def test_model_server_errors_map_to_the_documented_statuses(
    exc: TritonError, status: int, error: str
) -> None:
    response = asyncio.run(_model_server_error(None, exc))  # type: ignore[arg-type]
    assert response.status_code == status
    assert json.loads(bytes(response.body)) == {"error": error, "detail": str(exc)}
    assert (response.headers.get("retry-after") == "1") == (status == 503)


def test_kill_and_restart_keep_the_ports_and_leave_no_shared_memory(triton: TritonServer) -> None:
    ports = (triton.http_port, triton.grpc_port, triton.metrics_port)
    triton.kill()
    assert not list(Path("/dev/shm").glob(f"{triton.shm_prefix}*"))
    triton.restart()
    assert (triton.http_port, triton.grpc_port, triton.metrics_port) == ports
    assert httpx.get(f"{triton.http_url}/v2/health/ready", timeout=5).status_code == 200
