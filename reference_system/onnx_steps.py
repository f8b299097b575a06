"""ONNX steps: export, ORT transformer fusion, INT8 dynamic and INT8 static quantisation.

Accuracy, size and agreement of each artefact: docs/reference_system.md, "The optimisation
ladder" (and each artefact's ``meta.json``).

Choices and what they cost:

- **Export**: the TorchScript exporter (``dynamo=False``; torch 2.13 defaults to dynamo),
  opset 17, dynamic batch and sequence axes, from a model loaded with
  ``attn_implementation="eager"`` so the graph has the MatMul/Softmax attention pattern that ORT's
  BERT fuser matches (verified: all 6 layers fuse). ``token_type_ids`` is an input because BERT
  has a token-type embedding (``type_vocab_size`` 2).
- **INT8 dynamic** quantises the fused graph, so the quantiser sees Attention and
  EmbedLayerNormalization and quantises them too (embedding table included): hence ~4x smaller.
  It needs ``extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT}`` because it cannot
  infer the contrib ops' output types.
- **INT8 static** runs on the plain export after ``quant_pre_process(skip_symbolic_shape=True)``
  (DESIGN.md §4 records that this flag is needed), MinMax-calibrated on the 500-text
  calibration split, U8 activations / S8 weights. It is restricted to MatMul/Gemm: static
  quantisation of every QDQ-capable op cost far more accuracy (DESIGN.md §4). Embeddings stay
  FP32 (Gather is not in the list), hence a smaller size gain. It loses accuracy and flips
  labels against FP32: dynamic quantisation is the better CPU variant for this model.
"""

from __future__ import annotations

import collections
import logging
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reference_system.cache import log
from reference_system.predictors import Encoder, OrtPredictor, Predictor, evaluate

__all__ = [
    "DynamicQuantConfig",
    "ExportConfig",
    "FuseConfig",
    "StaticQuantConfig",
    "compare",
    "export_onnx",
    "fuse",
    "op_counts",
    "quantize_dynamic_int8",
    "quantize_static_int8",
]

MODEL_FILE = "model.onnx"


@dataclass(frozen=True)
class ExportConfig:
    opset: int = 17
    #: texts from the test split compared between PyTorch and ONNX Runtime
    verify_sample: int = 256

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FuseConfig:
    model_type: str = "bert"
    num_heads: int = 12
    hidden_size: int = 384

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DynamicQuantConfig:
    per_channel: bool = True
    reduce_range: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class StaticQuantConfig:
    per_channel: bool = True
    op_types: tuple[str, ...] = ("MatMul", "Gemm")
    activation_type: str = "QUInt8"
    weight_type: str = "QInt8"
    calibrate_method: str = "MinMax"
    calibration_batch: int = 32
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def export_onnx(model_dir: Path, out_dir: Path, config: ExportConfig) -> dict[str, Any]:
    """Export the fine-tuned classifier to ``out_dir/model.onnx``; returns export facts."""
    import torch

    from reference_system.training import load_classifier

    model, _ = load_classifier(model_dir, attn_implementation="eager")
    model.eval()
    encode = Encoder(model_dir, max_length=64)
    # Two texts of different lengths so the traced graph sees real padding.
    sample = encode(["a film", "an overlong, joyless and strangely moving piece of cinema"])
    uses_token_types = getattr(model.config, "type_vocab_size", 0) > 0
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if uses_token_types else [])
    args = tuple(torch.from_numpy(sample[n]) for n in names)
    dynamic = {n: {0: "batch", 1: "sequence"} for n in names}
    dynamic["logits"] = {0: "batch"}
    t0 = time.monotonic()
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated but is the one whose output ORT's fuser reads.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            args,
            str(out_dir / MODEL_FILE),
            input_names=names,
            output_names=["logits"],
            dynamic_axes=dynamic,
            opset_version=config.opset,
            dynamo=False,
            do_constant_folding=True,
        )
    log(f"export: opset {config.opset}, inputs {', '.join(names)} ({time.monotonic() - t0:.1f}s)")
    return {
        "inputs": names,
        "opset": config.opset,
        "exporter": "torchscript",
        "attn_implementation": "eager",
    }


def op_counts(model_path: Path) -> dict[str, int]:
    """Node count per op type (top-level graph)."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    return dict(collections.Counter(n.op_type for n in graph.node).most_common())


def fuse(model_path: Path, out_dir: Path, config: FuseConfig) -> dict[str, Any]:
    """ORT's transformer optimiser: fuse attention, layer norms and GELU for CPU inference."""
    from onnxruntime.transformers.optimizer import (  # type: ignore[import-untyped]
        optimize_model,
    )

    optimized = optimize_model(
        str(model_path),
        model_type=config.model_type,
        num_heads=config.num_heads,
        hidden_size=config.hidden_size,
        use_gpu=False,
    )
    stats = {k: int(v) for k, v in optimized.get_fused_operator_statistics().items() if v}
    optimized.save_model_to_file(str(out_dir / MODEL_FILE))
    log(f"fuse: {', '.join(f'{k} {v}' for k, v in stats.items())}")
    return {"fused_ops": stats}


def quantize_dynamic_int8(
    model_path: Path, out_dir: Path, config: DynamicQuantConfig
) -> dict[str, Any]:
    """INT8 dynamic quantisation (weights INT8 ahead of time, activations scaled per call)."""
    import onnx
    from onnxruntime.quantization import (  # type: ignore[import-untyped]
        QuantType,
        quantize_dynamic,
    )

    # The quantiser logs "consider pre-processing" on the root logger: pre-processing (shape
    # inference + ORT's basic optimisations) is for unfused graphs; this one is already fused.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_dynamic(
            str(model_path),
            str(out_dir / MODEL_FILE),
            per_channel=config.per_channel,
            reduce_range=config.reduce_range,
            weight_type=QuantType.QInt8,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        root.setLevel(level)
    return {}


class _CalibrationReader:
    """Feeds tokenised calibration batches to ORT's calibrator (``CalibrationDataReader``)."""

    def __init__(self, batches: list[dict[str, np.ndarray[Any, Any]]]) -> None:
        self._iter: Iterator[dict[str, np.ndarray[Any, Any]]] = iter(batches)
        self._batches = batches

    def get_next(self) -> dict[str, np.ndarray[Any, Any]] | None:
        return next(self._iter, None)

    def rewind(self) -> None:
        self._iter = iter(self._batches)


def quantize_static_int8(
    model_path: Path,
    tokenizer_dir: Path,
    calibration: Sequence[str],
    out_dir: Path,
    config: StaticQuantConfig,
) -> dict[str, Any]:
    """INT8 static QDQ quantisation calibrated on ``calibration`` texts."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import (  # type: ignore[import-untyped]
        quant_pre_process,
    )

    pre = out_dir / "preprocessed.onnx"
    quant_pre_process(str(model_path), str(pre), skip_symbolic_shape=True)
    encode = Encoder(tokenizer_dir, max_length=128)
    inputs = {i.name for i in onnx.load(str(pre), load_external_data=False).graph.input}
    batches = []
    for start in range(0, len(calibration), config.calibration_batch):
        enc = encode(calibration[start : start + config.calibration_batch])
        batches.append({k: v for k, v in enc.items() if k in inputs})
    reader = _CalibrationReader(batches)  # duck-types CalibrationDataReader
    t0 = time.monotonic()
    quantize_static(
        str(pre),
        str(out_dir / MODEL_FILE),
        reader,
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=list(config.op_types),
        per_channel=config.per_channel,
        activation_type=QuantType[config.activation_type],
        weight_type=QuantType[config.weight_type],
        calibrate_method=CalibrationMethod[config.calibrate_method],
        extra_options=dict(config.extra) or None,
    )
    pre.unlink()
    log(
        f"quantize_static: calibrated on {len(calibration)} texts in {len(batches)} batches "
        f"({time.monotonic() - t0:.1f}s)"
    )
    return {"calibration_texts": len(calibration)}


def compare(
    reference: Predictor, candidate: Predictor, texts: Sequence[str], *, batch_size: int = 32
) -> dict[str, float]:
    """Max |logit difference| and label agreement of ``candidate`` against ``reference``."""
    max_diff = 0.0
    agree = 0
    for start in range(0, len(texts), batch_size):
        batch = texts[start : start + batch_size]
        a, b = reference.predict(batch), candidate.predict(batch)
        max_diff = max(max_diff, float(np.max(np.abs(a.logits - b.logits))))
        agree += int(np.sum(a.labels == b.labels))
    return {
        "max_abs_logit_diff": max_diff,
        "label_agreement": agree / len(texts),
        "compared_texts": len(texts),
    }


def ort_metrics(
    model_path: Path,
    tokenizer_dir: Path,
    test_texts: Sequence[str],
    test_labels: Sequence[int],
    reference: Predictor | None,
    sample: int,
) -> dict[str, Any]:
    """Size, op counts, test accuracy and (optionally) agreement with a reference predictor."""
    t0 = time.monotonic()
    with OrtPredictor(model_path, tokenizer_dir, name=model_path.parent.name) as p:
        accuracy, _ = evaluate(p, test_texts, test_labels)
        out: dict[str, Any] = {
            "accuracy": accuracy,
            "test_examples": len(test_texts),
            "size_bytes": model_path.stat().st_size,
            "op_counts": op_counts(model_path),
        }
        if reference is not None:
            out["vs_reference"] = compare(reference, p, list(test_texts[:sample]))
    log(
        f"  accuracy {accuracy:.4f} on {len(test_texts)} test texts, "
        f"{out['size_bytes'] / 1e6:.1f} MB ({time.monotonic() - t0:.1f}s)"
    )
    return out
