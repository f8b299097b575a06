"""A real BERT-sentiment stack used as pytest-latency's proving ground.

The model half: :func:`build` fine-tunes all-MiniLM-L6-v2 on Rotten Tomatoes snippets and
derives ONNX FP32, ORT-fused and INT8 (dynamic, static) variants, plus a distilled 3-layer
student in INT8, all cached on disk; the predictors run any of them behind one
``predict(texts) -> Prediction`` protocol.

Importing this package is cheap: names resolve lazily, and torch / onnxruntime / transformers
load only when a build step or predictor needs them.

Example::

    from reference_system import build
    artifacts = build("quick")
    with artifacts.predictor("ort-int8-dynamic") as p:
        print(p.predict(["a triumph", "a chore"]).labels)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reference_system.artifacts import Artifacts
    from reference_system.build import PROFILES, Profile, build
    from reference_system.data import DatasetUnavailable, Splits, load_splits
    from reference_system.predictors import (
        BackendUnavailable,
        OrtPredictor,
        Prediction,
        Predictor,
        TorchPredictor,
    )
    from reference_system.tensorrt import TensorRTPredictor

__all__ = [
    "PROFILES",
    "Artifacts",
    "BackendUnavailable",
    "DatasetUnavailable",
    "OrtPredictor",
    "Prediction",
    "Predictor",
    "Profile",
    "Splits",
    "TensorRTPredictor",
    "TorchPredictor",
    "build",
    "load_splits",
]

_WHERE = {
    "PROFILES": "build",
    "Artifacts": "artifacts",
    "Profile": "build",
    "build": "build",
    "DatasetUnavailable": "data",
    "Splits": "data",
    "load_splits": "data",
    "BackendUnavailable": "predictors",
    "OrtPredictor": "predictors",
    "Prediction": "predictors",
    "Predictor": "predictors",
    "TorchPredictor": "predictors",
    "TensorRTPredictor": "tensorrt",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'reference_system' has no attribute {name!r}")
    return getattr(importlib.import_module(f"reference_system.{module}"), name)
