"""TensorRT FP16 through ONNX Runtime's ``TensorrtExecutionProvider`` (GPU hosts only).

TensorRT needs ``onnxruntime-gpu`` (which overwrites the CPU ``onnxruntime`` package, so it lives
in a separate environment) plus NVIDIA's TensorRT libraries, which come from NVIDIA's own package
index, not PyPI. Without a GPU, ONNX Runtime silently falls back to the CPU provider; this module
detects that from ``session.get_providers()`` and raises :class:`BackendUnavailable` instead of
reporting CPU numbers under a TensorRT name.

The engine is built for the FP32 ONNX export (not ORT's fused graph: its contrib ops such as
``EmbedLayerNormalization`` are not TensorRT layers) with FP16 enabled and one optimisation
profile spanning ``min``/``opt``/``max`` shapes (batch x sequence). Building an engine takes
minutes; it is cached next to the model (``trt_engine_cache_path``).

Example::

    p = TensorRTPredictor(artifacts.onnx_fp32, artifacts.tokenizer_dir)   # on a GPU host
    p.predict(["fine"]).labels
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reference_system.predictors import (
    BackendUnavailable,
    OrtPredictor,
    Prediction,
    PredictorBase,
)

__all__ = [
    "TENSORRT_INSTALL_COMMAND",
    "ShapeProfile",
    "TensorRTPredictor",
    "cuda_device_status",
    "tensorrt_status",
]

TENSORRT_INSTALL_COMMAND = (
    "in a separate virtualenv (onnxruntime-gpu replaces onnxruntime): "
    "pip install onnxruntime-gpu tokenizers && "
    "pip install --extra-index-url https://pypi.nvidia.com tensorrt"
)
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass(frozen=True)
class ShapeProfile:
    """TensorRT optimisation profile: (batch, sequence) for min, opt and max."""

    min: tuple[int, int] = (1, 1)
    opt: tuple[int, int] = (8, 64)
    max: tuple[int, int] = (32, 128)

    def option(self, which: str) -> str:
        batch, seq = getattr(self, which)
        return ",".join(f"{name}:{batch}x{seq}" for name in _INPUTS)


def cuda_device_status() -> str | None:
    """``None`` when a CUDA device is visible here, else why not. ONNX Runtime's provider list
    says what the package was built with, not whether a GPU exists, so look for the device."""
    import shutil
    import subprocess

    if not Path("/dev/nvidiactl").exists():
        return "no NVIDIA GPU on this machine (/dev/nvidiactl is absent)"
    smi = shutil.which("nvidia-smi")
    if smi is not None:
        try:
            listing = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"nvidia-smi failed: {exc}"
        if listing.returncode != 0 or "GPU" not in listing.stdout:
            return f"nvidia-smi -L lists no GPU: {(listing.stderr or listing.stdout).strip()}"
    return None


def tensorrt_status() -> str | None:
    """``None`` when the TensorRT provider is offered here, else the reason it is not.

    Cheap: it does not create a session (a session still may fall back; the predictor checks).
    """
    try:
        import onnxruntime as ort  # type: ignore[import-untyped]
    except ImportError:
        return "onnxruntime-gpu is not installed"
    available = ort.get_available_providers()
    if "TensorrtExecutionProvider" not in available:
        return (
            f"onnxruntime {ort.__version__} offers no TensorrtExecutionProvider "
            f"(available: {', '.join(available)})"
        )
    return None


class TensorRTPredictor(PredictorBase):
    """FP16 TensorRT engine behind the :class:`~reference_system.predictors.Predictor` API."""

    def __init__(
        self,
        model_path: Path,
        tokenizer_dir: Path,
        *,
        name: str = "tensorrt-fp16",
        profile: ShapeProfile | None = None,
        fp16: bool = True,
        device_id: int = 0,
        engine_cache_dir: Path | None = None,
    ) -> None:
        self.name = name
        reason = tensorrt_status()
        if reason is not None:
            raise BackendUnavailable(name, reason, TENSORRT_INSTALL_COMMAND)
        profile = profile or ShapeProfile()
        cache = engine_cache_dir or model_path.parent / "trt_engines"
        cache.mkdir(parents=True, exist_ok=True)
        trt_options: dict[str, Any] = {
            "device_id": device_id,
            "trt_fp16_enable": fp16,
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(cache),
            "trt_profile_min_shapes": profile.option("min"),
            "trt_profile_opt_shapes": profile.option("opt"),
            "trt_profile_max_shapes": profile.option("max"),
        }
        # Texts longer than the profile's max sequence would fall outside the engine.
        self._session = OrtPredictor(
            model_path,
            tokenizer_dir,
            name=name,
            max_length=profile.max[1],
            providers=[
                ("TensorrtExecutionProvider", trt_options),
                ("CUDAExecutionProvider", {"device_id": device_id}),
            ],
            install_hint=TENSORRT_INSTALL_COMMAND,
        )
        self.profile = profile
        self.providers = self._session.providers

    def predict(self, texts: Sequence[str]) -> Prediction:
        if len(texts) > self.profile.max[0]:
            raise ValueError(
                f"batch of {len(texts)} exceeds the TensorRT profile's max batch "
                f"{self.profile.max[0]}; split it or build a larger profile"
            )
        return self._session.predict(texts)

    def close(self) -> None:
        self._session.close()
