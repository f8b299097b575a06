"""Chapter 2 of the playbook as tests: the service, end to end, under load.

"A BERT sentiment FastAPI service: measure its baseline p99; deploy ONNX + INT8 on Triton;
Redis cache + gRPC client; cut p99 5x." Both stacks answer the same HTTP contract on real
servers (uvicorn, tritonserver, redis-server) on loopback; requests carry held-out review
snippets, a share of them repeats (what a cache is for), and arrive open-loop (Poisson) so a
slow server cannot quietly slow the load down.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

httpx = pytest.importorskip("httpx", reason="run: pip install -r requirements/reference.txt")

from pytest_latency import LatencyMissed, record_stage  # noqa: E402

pytestmark = pytest.mark.slo

OFFERED_RPS = 20  # the same offered load for every stack
# No CUDA device here: Triton runs the model on the CPU, behind its gRPC and Python-backend hop.
CPU_ONLY = not Path("/dev/nvidiactl").exists()
REPEAT_RATIO = 0.5  # share of requests that repeat a popular review
# The co-located front keeps its weights warm for 1 s after its last request
# (colocated.KEEP_WARM_WINDOW_S); same-run comparisons pause this long before each block.
KEEP_WARM_SETTLE_S = 1.2
# ... and leave the first requests of each block untimed: a front that comes back after the
# other's 5-s block (and the pause) starts cold, which steady 20 rps traffic never does.
BLOCK_WARMUP = 5


def workload(texts: Sequence[str], repeat_ratio: float, seed: int = 7) -> Iterator[str]:
    """Held-out reviews; with probability `repeat_ratio` one of the 50 most popular ones.

    The others are new to the cache: each carries a mark unique to this workload, so a test
    that runs after another on the same Redis does not find them cached already (the cache
    would turn the "fresh" half into hits, and the test into a cache-only run)."""
    rng = random.Random(seed)
    tag = uuid.uuid4().hex[:8]
    hot, fresh = list(texts[:50]), itertools.cycle(texts[50:])
    for i in itertools.count():
        yield rng.choice(hot) if rng.random() < repeat_ratio else f"{next(fresh)} ({tag}-{i})"


class Client:
    """The load generator's client: one review per call on this thread's kept-alive connection
    (``KeepAliveClient``: raw sockets, one ``sendall`` per request, TCP_NODELAY); records the
    server's stages, and "transport" as the rest of the time the call took.

    Not httpx: the open loop runs each measurement on fresh threads, and an ``httpx.Client``
    made on one sets up an SSL context holding the GIL, which showed up as the "cache-hit
    stalls" (docs/serving.md, "The cache-hit stalls"); nor ``http.client``, whose own parsing
    is load-generator time counted as the service's."""

    def __init__(self, base_url: str, texts: Iterator[str]) -> None:
        from reference_system.serving.loadgen_http import KeepAliveClient

        self.http = KeepAliveClient(base_url, want=("server-timing",))
        self.texts = texts
        self._lock = threading.Lock()
        self.answered = self.cached = 0  # requests answered; texts answered from the cache

    def post(self, text: str) -> dict[str, Any]:
        body = json.dumps({"texts": [text]}).encode()
        t0 = time.perf_counter_ns()
        response = self.http.post("/predict", body)
        elapsed_ns = time.perf_counter_ns() - t0
        if response.status != 200:
            raise RuntimeError(f"POST /predict answered {response.status}: {response.body[:200]!r}")
        server = _server_timing(response.headers.get("server-timing"))
        for name, ms in server.items():
            record_stage(name, int(ms * 1e6))
        record_stage("transport", max(0, elapsed_ns - int(sum(server.values()) * 1e6)))
        answer: dict[str, Any] = json.loads(response.body)
        with self._lock:
            self.answered += 1
            self.cached += sum(answer["cached"])
        return answer

    def __call__(self) -> dict[str, Any]:
        with self._lock:
            text = next(self.texts)
        return self.post(text)

    def close(self) -> None:
        self.http.close()


def _server_timing(header: str | None) -> dict[str, float]:
    from reference_system.serving.app import parse_server_timing

    return parse_server_timing(header)


@pytest.fixture
def client_for(review_texts: list[str]) -> Iterator[Callable[..., Client]]:
    made: list[Client] = []

    def make(url: str, repeat_ratio: float = REPEAT_RATIO) -> Client:
        made.append(Client(url, workload(review_texts, repeat_ratio)))
        return made[-1]

    yield make
    for client in made:
        client.close()


@pytest.mark.xfail(
    strict=True,
    raises=LatencyMissed,
    reason="PyTorch FP32 in the server process: 10-30 ms of model time a review on 2 CPU "
    "threads, requests queue behind it, p99 far over 10 ms (docs/serving.md, Under load)",
)
@pytest.mark.slo(p99_ms=10, rate_rps=OFFERED_RPS, max_time_s=60)
def test_baseline_service_misses_a_10ms_p99_at_the_offered_load(latency, baseline_url, client_for):
    latency(client_for(baseline_url, repeat_ratio=0.0), name="baseline")


@pytest.fixture
def warm_cache(colocated_url: str, review_texts: list[str]) -> list[str]:
    """The 50 popular reviews, answered once so the co-located front has them cached."""
    hot = review_texts[:50]
    with httpx.Client(base_url=colocated_url, timeout=5.0) as client:
        for text in hot:
            client.post("/predict", json={"texts": [text]}).raise_for_status()
        for _ in range(100):  # the entries are written after each answer: wait for the last
            if client.post("/predict", json={"texts": [hot[-1]]}).json()["cached"] == [True]:
                break
            time.sleep(0.02)
    return hot


# Expected to pass where Triton has a GPU: run it there against NVIDIA's Triton image serving
# `write_gpu_model_repository`'s TensorRT or CUDA repository (--triton-url HOST:PORT). On CPU
# the claimed miss is decided on the host in its reference state (`quiet_host.decides_a_miss`,
# as the PyTorch baseline's is): on hosts about 1.2x faster than that the Triton path read
# 12.73 [11.49, 17.34] and, in a CI run (INT8 p50 1.73 ms), INCONCLUSIVE 10.54 [9.68, 11.96]
# after 60 s. Up to 180 s, so that a p99 near the target is decided rather than undecided.
@pytest.mark.xfail(
    condition=CPU_ONLY,
    strict=True,
    raises=LatencyMissed,
    reason="on CPU the Triton hop costs about as much as the model (a miss's inference stage "
    "5.7-6.2 ms p50 against 3.0 ms in-process), so the mixed p99 is 14-19 ms; docs/serving.md, "
    "Where the Triton path's time goes",
)
@pytest.mark.slo(p99_ms=10, rate_rps=OFFERED_RPS, max_time_s=180)
def test_triton_service_p99_at_the_same_load(latency, service_url, client_for, request):
    decided = (
        request.getfixturevalue("quiet_host").decides_a_miss(latency)
        if CPU_ONLY
        else contextlib.nullcontext()  # on a GPU host this claim is meant to pass: no excuse
    )
    client = client_for(service_url)
    with decided:
        latency(client, name="optimised (Triton)")
    # Reached on a PASS only: it must have been measured on the playbook's mix, not the cache.
    assert client.cached <= 0.6 * client.answered, (client.cached, client.answered)


# The playbook's claim on the CPU deployment, as a plain test. At least 1,000 samples (at 348
# the p99 upper bound is the sample maximum, which one stall of the host decides), and up to
# 240 s (4,800) for a p99 near the target to be decided rather than INCONCLUSIVE. Decided on
# the host in its quiet state (`quiet_host`, tests/slo/conftest.py). Figures, quiet and busy
# hours: docs/serving.md ("The co-located front", "Busy hours").
@pytest.mark.slo(p99_ms=10, rate_rps=OFFERED_RPS, min_samples=1000, max_time_s=240)
def test_colocated_service_meets_a_10ms_p99_at_the_same_load(
    latency, colocated_url, client_for, quiet_host
):
    client = client_for(colocated_url)
    with quiet_host.decides(latency):
        result = latency(client, name="colocated")
    assert "inference" in result.stages_ms  # misses ran the model in the front
    # Half the traffic repeats (of which the first sight of each popular review misses):
    # a hit share far above 50 % would mean the test measured the cache, not the service.
    assert client.cached <= 0.6 * client.answered, (client.cached, client.answered)


# Hits and misses are separate distributions with their own verdicts, on the co-located front.
# A hit is the service's claim without the model: 10 ms at p99. (Figures, and the "hit
# stalls" that were the load generator's: docs/serving.md.)
@pytest.mark.slo(p50_ms=5, p99_ms=10, rate_rps=OFFERED_RPS, min_samples=700, max_time_s=90)
def test_cache_hits_have_their_own_latency_distribution(
    latency, colocated_url, warm_cache, quiet_host
):
    client = Client(colocated_url, itertools.cycle(warm_cache))
    try:
        with quiet_host.decides(latency):
            result = latency(client, name="cache hits")
    finally:
        client.close()
    assert "inference" not in result.stages_ms  # every answer came from Redis
    assert client.cached == client.answered


# Traffic that never repeats is outside the playbook's claim (which counts on half the
# requests hitting the cache). Its target is the budget of a miss built from the claims:
# the model's 10 ms (the model ladder's) plus the front's and the cache's 10 ms (a hit's).
@pytest.mark.slo(p50_ms=10, p99_ms=20, rate_rps=OFFERED_RPS, min_samples=700, max_time_s=90)
def test_cache_misses_have_their_own_latency_distribution(
    latency, colocated_url, review_texts, quiet_host
):
    unique = (
        f"{text} (#{i} {uuid.uuid4().hex[:8]})"
        for i, text in enumerate(itertools.cycle(review_texts))
    )
    client = Client(colocated_url, unique)
    try:
        with quiet_host.decides(latency):
            result = latency(client, name="cache misses")
    finally:
        client.close()
    assert "inference" in result.stages_ms
    assert client.cached == 0


# The playbook's "cut p99 5x", decided with confidence in one run: the baseline and the
# co-located front take turns in blocks of 100 requests, each block on its own open-loop
# schedule at the offered rate (so a drift of the shared host hits both alike), and the
# speed-up's lower bound -- the baseline's p99 lower bound over the co-located upper bound,
# each at half the error -- must reach 5x. The marker's target is the co-located front's claim;
# the comparison itself decides only the ratio. A 1.2 s unmeasured pause before each block:
# the co-located front's keep-warm loop runs for 1 s after its last request, and would
# otherwise take CPU from the start of the baseline's block (a bias in the co-located's
# favour); and 5 untimed requests open each block (`BLOCK_WARMUP`). Decided on the host in
# its reference state (`quiet_host`): a busy host adds stalls to the co-located front's tail,
# a faster one shortens the baseline's queue; either moves this ratio. 2,000 samples a side
# before the first look (about 260 s): at 1,000 three CI runs in a row read lower bounds of
# 5.33, 5.07 and 5.07 around points of 6.0-7.6x -- the bounds' width, not the speed-up, was
# what nearly failed; up to 540 s so that a second look can reach 4,000.
@pytest.mark.slo(p99_ms=10, rate_rps=OFFERED_RPS, min_samples=2000, max_time_s=540)
def test_colocated_p99_is_5x_lower_than_the_baseline_in_the_same_run(
    latency, baseline_url, colocated_url, client_for, quiet_host
):
    with quiet_host.decides(latency, faster_too=True):
        comparison = latency.speedup(
            client_for(colocated_url),
            client_for(baseline_url),
            min_speedup=5.0,
            block=100,
            names=("colocated", "baseline"),
            settle_s=KEEP_WARM_SETTLE_S,
            block_warmup=BLOCK_WARMUP,
        )
    assert comparison.lower is not None, comparison.summary()
    assert comparison.lower >= 5.0, comparison.summary()


# The stages are what this test decides, not the end-to-end p99: that one also counts the
# load generator's own delays before sending, as an open loop must (docs/serving.md, "Where
# the Triton path's time goes").
@pytest.mark.slo(
    p99_ms=100,
    rate_rps=OFFERED_RPS,
    min_samples=700,  # per-stage p99 upper bounds that one scheduler stall cannot decide
    max_time_s=90,
    # The playbook's budget shape on the Triton path, sized for this host: on 2 shared cores
    # any stage can be preempted for a scheduler slice; the cache stage (two awaited round
    # trips on the asyncio front) also holds whatever else the loop ran meanwhile, hence 15
    # (its measured p99s: docs/serving.md).
    budget={"inference": 40, "cache": 15, "tokenise": 10, "postprocess": 10, "transport": 25},
)
def test_latency_budget_of_the_triton_path(latency, service_url, review_texts):
    # Texts the cache has never seen, so every request passes through every stage.
    tag = uuid.uuid4().hex[:8]
    unique = (f"{t} [budget {tag} {i}]" for i, t in enumerate(itertools.cycle(review_texts)))
    client = Client(service_url, unique)
    try:
        result = latency(client, name="budget (Triton)")
    finally:
        client.close()
    p50 = {name: s["p50"] for name, s in result.stages_ms.items()}
    assert max(p50, key=lambda k: p50[k]) == "inference", p50


# Why the co-located front is the CPU deployment: on 2 cores the Triton hop (gRPC, the Python
# backend's stub IPC, two more processes) costs a large share of a miss. The same all-miss
# traffic to both fronts, in the same run, alternating blocks of 100 open-loop requests with a
# pause before each (the co-located front's keep-warm stops first), decided at the median: the
# co-located front answers a miss at least 1.3x faster. (Figures, the hop measured against
# the model in-process and by perf_analyzer: docs/serving.md, "Where the Triton path's time
# goes".) The Triton front runs the 6-layer INT8 model, the co-located one the student: the
# claim is about the two deployments as shipped, and each answers with its own model's labels
# (the accuracy tests hold both within two points of FP32).
@pytest.mark.skipif(not CPU_ONLY, reason="a claim about CPU hosts; on a GPU Triton runs the model")
@pytest.mark.slo(p99_ms=100, rate_rps=OFFERED_RPS, min_samples=400, max_time_s=150)
def test_on_cpu_the_colocated_front_answers_a_miss_at_least_1_3x_faster_than_triton(
    latency, service_url, colocated_url, review_texts
):
    tag = uuid.uuid4().hex[:8]

    def misses(side: str) -> Client:
        cycle = itertools.cycle(review_texts)
        return Client(
            colocated_url if side == "colocated" else service_url,
            (f"{t} [{side} {tag} {i}]" for i, t in enumerate(cycle)),
        )

    colocated, triton = misses("colocated"), misses("triton")
    try:
        comparison = latency.speedup(
            colocated,
            triton,
            min_speedup=1.3,
            quantile=0.5,
            block=100,
            names=("colocated, misses", "Triton, misses"),
            settle_s=KEEP_WARM_SETTLE_S,
            block_warmup=BLOCK_WARMUP,
        )
    finally:
        colocated.close()
        triton.close()
    assert (colocated.cached, triton.cached) == (0, 0)  # misses only, on both fronts
    assert comparison.lower is not None, comparison.summary()
    assert comparison.lower >= 1.3, comparison.summary()


@pytest.fixture
def stack_with_its_own_redis(
    request: pytest.FixtureRequest, triton_grpc_url: str
) -> Iterator[tuple[str, Any]]:
    """An optimised front on the session's Triton with a Redis of its own, for a test that
    kills that Redis mid-run. Skipped against external deployments: we cannot kill theirs."""
    if request.config.getoption("--service-url") or request.config.getoption("--redis-url"):
        pytest.skip("kills its own Redis mid-run; not run against an external --service-url")
    from reference_system.serving.redis_server import RedisServer
    from reference_system.serving.services import SentimentService

    profile = request.config.getoption("--reference-profile")
    with RedisServer() as redis_server:
        extra = ["--triton-url", triton_grpc_url, "--redis-url", redis_server.url]
        with SentimentService("optimised", profile=profile, extra=extra) as service:
            yield service.url, redis_server


# Fail open, under load: Redis is killed (SIGKILL, no goodbye) 10 s into an open-loop run, past
# the 2 s warm-up, so about a third of the timed requests see it alive. Every request must
# still be answered -- from the model -- with no errors and within the cache-miss p99 target,
# and the front's metrics must say it ran degraded.
@pytest.mark.slo(
    p99_ms=100,
    rate_rps=OFFERED_RPS,
    warmup=40,
    min_samples=700,
    max_time_s=90,
    max_error_rate=0.0,
)
def test_optimised_path_answers_from_the_model_when_redis_dies_mid_run(
    latency, stack_with_its_own_redis, client_for
):
    import os
    import signal

    url, redis_server = stack_with_its_own_redis
    client = client_for(url)
    kill = threading.Timer(10.0, os.killpg, (redis_server.pid, signal.SIGKILL))
    kill.start()
    try:
        result = latency(client, name="redis killed at 10 s")
    finally:
        kill.cancel()
    assert not redis_server.running, "the run ended before Redis was killed"
    assert result.errors == 0
    metrics = httpx.get(f"{url}/metrics", timeout=5.0).json()
    assert metrics["cache"]["errors"] >= 1, metrics
    assert metrics["cache"]["degraded"] is True, metrics
    assert "inference" in result.stages_ms


def labels_over_http(url: str) -> Callable[[Sequence[str]], list[int]]:
    """The deployed front's labels for `texts`, 32 texts per request (the contract's limit)."""

    def run(texts: Sequence[str]) -> list[int]:
        labels: list[int] = []
        with httpx.Client(base_url=url, timeout=30.0) as client:
            for start in range(0, len(texts), 32):
                r = client.post("/predict", json={"texts": list(texts[start : start + 32])})
                r.raise_for_status()
                labels.extend(r.json()["labels"])
        return labels

    return run


# The co-located front serves the distilled INT8 student; the deployment keeps the student's
# accuracy gate (at most two points below the FP32 PyTorch teacher) measured over HTTP, its
# cache included.
@pytest.mark.accuracy(max_drop=0.02)
def test_colocated_service_loses_at_most_two_accuracy_points(
    accuracy_gate, colocated_url, fp32, splits
):
    from reference_system.predictors import evaluate

    def reference(texts: Sequence[str]) -> list[int]:
        _, prediction = evaluate(fp32, list(texts), [0] * len(texts))
        return [int(x) for x in prediction.labels]

    texts, labels = list(splits.test.texts), list(splits.test.labels)
    result = accuracy_gate(labels_over_http(colocated_url), reference, texts, labels)
    assert result.reference_accuracy >= 0.82


class Corrupting:
    """A client that knows the right answer: it cycles over `texts`, and on a seeded
    `share` of requests flips the label the service returned (a proxy that corrupts
    answers in flight). Returns ``(text, label)`` for the check to judge."""

    def __init__(self, url: str, texts: Sequence[str], share: float, seed: int = 11) -> None:
        from reference_system.serving.loadgen_http import KeepAliveClient

        self.http = KeepAliveClient(url)
        self.texts = itertools.cycle(texts)
        self.share, self.rng = share, random.Random(seed)
        self._lock = threading.Lock()

    def __call__(self) -> tuple[str, int]:
        with self._lock:
            text, corrupt = next(self.texts), self.rng.random() < self.share
        response = self.http.post("/predict", json.dumps({"texts": [text]}).encode())
        if response.status != 200:
            raise RuntimeError(f"POST /predict answered {response.status}: {response.body[:200]!r}")
        label = int(json.loads(response.body)["labels"][0])
        return text, (1 - label) if corrupt else label

    def close(self) -> None:
        self.http.close()


# Goodput: p99 sees only time. 5 % of answers corrupted in flight are invisible to the
# latency targets and to the error rate; the goodput target (right *and* within 50 ms, at
# least 99 % of requests) catches them. "Right" is what the same front answered for the
# text before the run.
@pytest.mark.slo(
    p99_ms=50, goodput=0.99, goodput_ms=50, rate_rps=OFFERED_RPS, min_samples=300, max_time_s=60
)
def test_goodput_fails_on_corrupted_answers_that_p99_cannot_see(
    latency, colocated_url, review_texts
):
    from pytest_latency.core.verdict import Decision

    texts = list(review_texts[:100])
    expected = dict(zip(texts, labels_over_http(colocated_url)(texts), strict=True))
    client = Corrupting(colocated_url, texts, share=0.05)
    try:
        with pytest.raises(LatencyMissed, match="FAIL: goodput"):
            latency(client, check=lambda answer: answer[1] == expected[answer[0]], name="corrupted")
    finally:
        client.close()
    result = latency.results[-1]
    rows = {t.metric: t for t in result.verdict.targets}
    assert rows["p99"].decision is Decision.PASS, result.verdict.summary()
    assert rows["goodput"].decision is Decision.FAIL
    assert result.samples.errors == 0
    assert 0.02 < result.samples.wrong / result.n < 0.09, (result.samples.wrong, result.n)


# The same co-located deployment, its load issued by two Locust worker processes instead of
# this one (engine="locust"): held-out reviews in turn, one open-loop schedule split over the
# workers, every request's latency from its intended start, decided by the plugin on the
# pooled raw samples. On this 2-core host Locust sustains less than the in-process driver
# (docs/benchmarks.md, "Load engines"): the engine is for load from more cores or machines
# than one process has, so the target here is the deployment's, with room for Locust's own
# HTTP client, not the 10 ms claim.
@pytest.mark.slo(
    p99_ms=50,
    rate_rps=OFFERED_RPS,
    engine="locust",
    workers=2,
    warmup=20,
    min_samples=400,
    max_time_s=60,
)
def test_colocated_service_under_load_from_locust_workers(latency, colocated_url, review_texts):
    payloads = [{"json": {"texts": [text]}} for text in review_texts[:200]]
    result = latency.http("POST", f"{colocated_url}/predict", payloads=payloads, name="locust")
    load = result.samples.load
    assert load.mode == "open"
    assert load.concurrency == 2
    assert load.offered_rps == OFFERED_RPS
    assert result.n >= 400
