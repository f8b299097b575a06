"""What a build returns: the artefacts' paths and metrics, and predictors by backend name.

Example::

    from reference_system import build
    artifacts = build("quick")
    artifacts.onnx_int8_student              # Path to the student's INT8 model.onnx
    with artifacts.predictor("ort-int8-student") as p:
        p.predict(["a quietly devastating film"]).labels
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reference_system.cache import Artefact
from reference_system.onnx_steps import MODEL_FILE
from reference_system.predictors import OrtPredictor, PredictorBase, TorchPredictor

__all__ = ["BACKENDS", "Artifacts"]

#: Predictor name -> the step whose ``model.onnx`` (or fine-tuned folder) it runs.
BACKENDS: Mapping[str, str] = {
    "torch-fp32": "finetune",
    "ort-fp32": "export",
    "ort-fused": "fuse",
    "ort-int8-dynamic": "quantize_dynamic",
    "ort-int8-static": "quantize_static",
    "ort-int8-student": "distill_int8",
    "tensorrt-fp16": "export",
}


@dataclass(frozen=True)
class Artifacts:
    """Paths and metadata of one built pipeline."""

    profile: str
    cache_dir: Path
    steps: Mapping[str, Artefact]
    #: steps that ran in this ``build()`` call (empty when everything came from the cache)
    built: tuple[str, ...]

    @property
    def keys(self) -> dict[str, str]:
        return {name: a.key for name, a in self.steps.items()}

    @property
    def model_dir(self) -> Path:
        """The fine-tuned HF model (``save_pretrained``), loadable by PyTorch."""
        return self.steps["finetune"].path

    @property
    def tokenizer_dir(self) -> Path:
        """The teacher's tokenizer; the distilled student shares it."""
        return self.steps["finetune"].path

    @property
    def onnx_fp32(self) -> Path:
        return self.steps["export"].file(MODEL_FILE)

    @property
    def onnx_fused(self) -> Path:
        return self.steps["fuse"].file(MODEL_FILE)

    @property
    def onnx_int8_dynamic(self) -> Path:
        return self.steps["quantize_dynamic"].file(MODEL_FILE)

    @property
    def onnx_int8_static(self) -> Path:
        return self.steps["quantize_static"].file(MODEL_FILE)

    @property
    def student_dir(self) -> Path:
        """The distilled 3-layer student (``save_pretrained``), loadable by PyTorch."""
        return self.steps["distill"].path

    @property
    def onnx_int8_student(self) -> Path:
        """The student, exported, fused and INT8-quantised like ``onnx_int8_dynamic``."""
        return self.steps["distill_int8"].file(MODEL_FILE)

    def metrics(self, step: str) -> dict[str, Any]:
        return dict(self.steps[step].meta.get("metrics", {}))

    def predictor(self, backend: str, **options: Any) -> PredictorBase:
        """Open a predictor by name (see :data:`BACKENDS`); options go to its constructor."""
        if backend not in BACKENDS:
            raise ValueError(f"{backend!r} is not a valid backend. Valid: {', '.join(BACKENDS)}")
        if backend == "torch-fp32":
            return TorchPredictor(self.model_dir, name=backend, **options)
        if backend == "tensorrt-fp16":
            from reference_system.tensorrt import TensorRTPredictor

            return TensorRTPredictor(self.onnx_fp32, self.tokenizer_dir, name=backend, **options)
        path = self.steps[BACKENDS[backend]].file(MODEL_FILE)
        return OrtPredictor(path, self.tokenizer_dir, name=backend, **options)
