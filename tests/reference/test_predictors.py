"""Every backend honours the Predictor protocol; unavailable ones say why and how to fix it."""

from __future__ import annotations

import numpy as np
import pytest

from reference_system.build import Artifacts
from reference_system.data import Splits
from reference_system.predictors import BackendUnavailable, OrtPredictor, Predictor
from reference_system.tensorrt import TENSORRT_INSTALL_COMMAND, TensorRTPredictor, tensorrt_status

CPU_BACKENDS = [
    "torch-fp32",
    "ort-fp32",
    "ort-fused",
    "ort-int8-dynamic",
    "ort-int8-static",
    "ort-int8-student",
]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_backend_returns_int_labels_and_float32_logits_per_text(
    artifacts: Artifacts, splits: Splits, backend: str
) -> None:
    texts = list(splits.test.texts[:5])
    with artifacts.predictor(backend) as p:
        assert isinstance(p, Predictor)
        assert p.name == backend
        prediction = p.predict(texts)
        single = p.predict(texts[:1])
    assert prediction.labels.dtype == np.int64
    assert prediction.labels.shape == (5,)
    assert prediction.logits.dtype == np.float32
    assert prediction.logits.shape == (5, 2)
    assert np.array_equal(prediction.labels, prediction.logits.argmax(axis=1))
    # Padding to the batch's longest text does not change a text's answer.
    assert single.labels[0] == prediction.labels[0]
    np.testing.assert_allclose(single.logits[0], prediction.logits[0], atol=2e-2)


def test_a_closed_predictor_refuses_to_predict(artifacts: Artifacts) -> None:
    p = artifacts.predictor("ort-int8-dynamic")
    p.close()
    with pytest.raises(RuntimeError, match="closed"):
        p.predict(["x"])


def test_ort_predictor_reports_the_providers_the_session_really_uses(artifacts: Artifacts) -> None:
    with artifacts.predictor("ort-fused", intra_op_threads=1) as p:
        assert isinstance(p, OrtPredictor)
        assert p.providers[0] == "CPUExecutionProvider"
        assert p.settings["intra_op_threads"] == 1


def test_requesting_a_provider_this_onnxruntime_lacks_raises_backend_unavailable(
    artifacts: Artifacts,
) -> None:
    with pytest.raises(BackendUnavailable, match=r"has no NoSuchExecutionProvider"):
        OrtPredictor(
            artifacts.onnx_fp32, artifacts.tokenizer_dir, providers=("NoSuchExecutionProvider",)
        )


def test_an_invalid_graph_optimisation_level_names_the_valid_ones(artifacts: Artifacts) -> None:
    with pytest.raises(ValueError, match=r"'max' is not valid\. Valid: disable, basic"):
        artifacts.predictor("ort-fp32", graph_optimization_level="max")


def test_an_unknown_backend_name_lists_the_valid_ones(artifacts: Artifacts) -> None:
    with pytest.raises(ValueError, match=r"'onnx' is not a valid backend\. Valid: torch-fp32"):
        artifacts.predictor("onnx")


def test_tensorrt_unavailable_error_names_reason_and_install_command(artifacts: Artifacts) -> None:
    if tensorrt_status() is None:
        pytest.skip("TensorRT provider is present here; see the gpu test")
    with pytest.raises(BackendUnavailable) as info:
        TensorRTPredictor(artifacts.onnx_fp32, artifacts.tokenizer_dir)
    assert "TensorrtExecutionProvider" in info.value.reason
    assert info.value.install == TENSORRT_INSTALL_COMMAND
    assert "pip install onnxruntime-gpu" in str(info.value)


@pytest.mark.gpu
def test_tensorrt_fp16_agrees_with_onnx_fp32_labels(artifacts: Artifacts, splits: Splits) -> None:
    try:
        trt = artifacts.predictor("tensorrt-fp16")
    except BackendUnavailable as exc:
        pytest.skip(str(exc))
    texts = list(splits.test.texts[:256])
    with trt, artifacts.predictor("ort-fp32") as ref:
        assert trt.providers[0] == "TensorrtExecutionProvider"  # type: ignore[attr-defined]
        agree = np.mean(
            np.concatenate(
                [
                    ref.predict(texts[i : i + 32]).labels == trt.predict(texts[i : i + 32]).labels
                    for i in range(0, len(texts), 32)
                ]
            )
        )
    assert agree >= 0.99
