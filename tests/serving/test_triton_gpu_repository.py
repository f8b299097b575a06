"""The Triton model repositories a GPU host would use (NVIDIA's Triton image: the
`onnxruntime_onnx` backend with the TensorRT accelerator, or a `tensorrt_plan`): their
configurations are checked here; serving them needs that image on a GPU host."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from reference_system.predictors import Encoder, OrtPredictor
from reference_system.serving.triton_client import TritonGrpcClient
from reference_system.serving.triton_repo import write_gpu_model_repository
from reference_system.serving.triton_server import TritonServer

if TYPE_CHECKING:
    from reference_system.build import Artifacts

pytest.importorskip(
    "tritonclient.grpc",
    reason="tritonclient is not installed; run: pip install 'tritonclient[grpc]'",
)


@pytest.fixture(scope="module")
def encode(artifacts: Artifacts) -> Encoder:
    return Encoder(artifacts.tokenizer_dir)


@pytest.fixture(scope="module")
def texts(review_texts: list[str]) -> list[str]:
    return review_texts[:64]


def test_gpu_onnxruntime_config_runs_tensorrt_fp16_on_gpu_instances(
    artifacts: Artifacts, tmp_path: Path
) -> None:
    repo = write_gpu_model_repository(tmp_path, artifacts.onnx_fp32, engine="onnxruntime_onnx")
    config = (repo / "sentiment" / "config.pbtxt").read_text()
    assert 'platform: "onnxruntime_onnx"' in config
    assert "max_batch_size: 32" in config
    assert "kind: KIND_GPU" in config
    assert "gpu_execution_accelerator" in config
    assert 'name : "tensorrt"' in config
    assert 'parameters { key: "precision_mode" value: "FP16" }' in config
    assert "preferred_batch_size: [ 8, 16, 32 ]" in config
    assert "max_queue_delay_microseconds: 2000" in config
    assert "allow_ragged_batch" not in config  # ORT needs equal shapes to batch
    assert config.count("data_type: TYPE_INT64 dims: [ -1 ]") == 3
    assert 'name: "logits" data_type: TYPE_FP32 dims: [ 2 ]' in config
    assert (repo / "sentiment" / "1" / "model.onnx").stat().st_size > 0


def test_tensorrt_plan_repository_documents_the_exact_trtexec_command(
    artifacts: Artifacts, tmp_path: Path
) -> None:
    repo = write_gpu_model_repository(tmp_path, artifacts.onnx_fp32, engine="tensorrt_plan")
    config = (repo / "sentiment" / "config.pbtxt").read_text()
    assert 'platform: "tensorrt_plan"' in config
    assert "kind: KIND_GPU" in config
    assert "dynamic_batching" in config
    readme = (repo / "README.md").read_text()
    shapes = ",".join(f"{n}:{{}}" for n in ("input_ids", "attention_mask", "token_type_ids"))
    command = (
        "trtexec --onnx=sentiment/model.onnx --saveEngine=sentiment/1/model.plan --fp16 "
        f"--minShapes={shapes.format(*['1x1'] * 3)} "
        f"--optShapes={shapes.format(*['32x64'] * 3)} "
        f"--maxShapes={shapes.format(*['32x128'] * 3)}"
    )
    assert command in readme
    assert (repo / "sentiment" / "model.onnx").is_file()
    assert not (repo / "sentiment" / "1" / "model.plan").exists()


def test_gpu_repository_rejects_an_unknown_engine_listing_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"'tensorflow' is not valid\. Valid: onnxruntime_onnx"):
        write_gpu_model_repository(tmp_path, tmp_path / "m.onnx", engine="tensorflow")  # type: ignore[arg-type]


def _nvidia_triton_image() -> Path | None:
    """``tritonserver`` from NVIDIA's image (with the onnxruntime backend) on a GPU host."""
    if shutil.which("nvidia-smi") is None:
        return None
    candidates = [Path("/opt/tritonserver/bin/tritonserver")]
    on_path = shutil.which("tritonserver")
    if on_path:
        candidates.append(Path(on_path))
    for binary in candidates:
        if (binary.resolve().parent.parent / "backends" / "onnxruntime").is_dir():
            return binary
    return None


@pytest.mark.gpu
def test_gpu_onnxruntime_repository_serves_the_fp32_model_with_the_same_labels(
    artifacts: Artifacts, tmp_path: Path, encode: Encoder, texts: list[str]
) -> None:
    binary = _nvidia_triton_image()
    if binary is None:
        pytest.skip(
            "needs NVIDIA's Triton image (nvcr.io/nvidia/tritonserver, with its onnxruntime "
            "backend) on a host with a GPU; the nvidia-pytriton wheel has the Python backend only"
        )
    repo = write_gpu_model_repository(tmp_path, artifacts.onnx_fp32, engine="onnxruntime_onnx")
    # The TensorRT accelerator builds its engine on first load: allow minutes.
    with (
        TritonServer(repo, binary=binary, start_timeout_s=600) as server,
        TritonGrpcClient(server.grpc_url, timeout_s=60) as client,
        OrtPredictor(artifacts.onnx_fp32, artifacts.tokenizer_dir) as fp32,
    ):
        got = client.infer(encode(texts[:32])).argmax(axis=1)
        assert np.mean(got == fp32.predict(texts[:32]).labels) >= 0.95
