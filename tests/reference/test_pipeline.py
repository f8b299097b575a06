"""The quick build: accuracy, export equivalence, fusion, quantisation, caching."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest

from reference_system.build import PROFILES, Artifacts, build, plan
from reference_system.data import Splits
from reference_system.onnx_steps import DynamicQuantConfig, FuseConfig, compare, op_counts

MIN_FP32_ACCURACY = 0.82


def test_fine_tuned_pytorch_model_reaches_82_percent_on_held_out_test(artifacts: Artifacts) -> None:
    metrics = artifacts.metrics("finetune")
    assert metrics["test_examples"] == 2_000
    assert metrics["accuracy"] >= MIN_FP32_ACCURACY


def test_onnx_export_matches_pytorch_logits_and_labels(
    artifacts: Artifacts, splits: Splits
) -> None:
    texts = list(splits.test.texts[:96])
    with (
        artifacts.predictor("torch-fp32", attn_implementation="eager") as torch_p,
        artifacts.predictor("ort-fp32") as ort_p,
    ):
        diff = compare(torch_p, ort_p, texts)
    assert diff["label_agreement"] == 1.0
    assert diff["max_abs_logit_diff"] < 1e-4
    recorded = artifacts.metrics("export")["vs_reference"]
    assert recorded["label_agreement"] == 1.0
    assert recorded["max_abs_logit_diff"] < 1e-4


def test_onnx_export_has_dynamic_batch_and_sequence_axes(
    artifacts: Artifacts, splits: Splits
) -> None:
    with artifacts.predictor("ort-fp32", max_length=16) as p:
        for batch in (1, 3, 17):
            prediction = p.predict(list(splits.test.texts[:batch]))
            assert prediction.logits.shape == (batch, 2)


def test_fused_graph_has_one_attention_node_per_layer(artifacts: Artifacts) -> None:
    ops = op_counts(artifacts.onnx_fused)
    assert ops.get("Attention") == 6
    assert ops.get("SkipLayerNormalization") == 12
    assert ops.get("EmbedLayerNormalization") == 1
    assert ops.get("BiasGelu", 0) + ops.get("FastGelu", 0) + ops.get("Gelu", 0) == 6
    assert "Softmax" not in ops
    assert artifacts.metrics("fuse")["fused_ops"]["Attention"] == 6


def test_fused_graph_agrees_with_the_plain_export(artifacts: Artifacts) -> None:
    vs = artifacts.metrics("fuse")["vs_reference"]
    assert vs["label_agreement"] == 1.0
    assert vs["max_abs_logit_diff"] < 1e-3


def test_int8_dynamic_model_is_about_4x_smaller_than_fp32(artifacts: Artifacts) -> None:
    ratio = artifacts.onnx_fp32.stat().st_size / artifacts.onnx_int8_dynamic.stat().st_size
    assert 3.5 < ratio < 4.5


def test_int8_static_model_is_smaller_but_keeps_fp32_embeddings(artifacts: Artifacts) -> None:
    # Static quantisation covers MatMul/Gemm only; the 30522x384 embedding table stays FP32.
    ratio = artifacts.onnx_fp32.stat().st_size / artifacts.onnx_int8_static.stat().st_size
    assert 1.3 < ratio < 2.0


def test_int8_dynamic_accuracy_is_within_1_point_of_fp32(artifacts: Artifacts) -> None:
    fp32 = artifacts.metrics("export")["accuracy"]
    int8 = artifacts.metrics("quantize_dynamic")["accuracy"]
    assert fp32 >= MIN_FP32_ACCURACY
    assert int8 >= fp32 - 0.01


def test_int8_static_on_matmul_only_accuracy_is_within_1_5_points_of_fp32(
    artifacts: Artifacts,
) -> None:
    fp32 = artifacts.metrics("export")["accuracy"]
    assert artifacts.metrics("quantize_static")["accuracy"] >= fp32 - 0.015


def test_every_artefact_records_key_config_versions_and_metrics(artifacts: Artifacts) -> None:
    for name, artefact in artifacts.steps.items():
        meta = artefact.meta
        assert meta["key"] == artefact.key == artefact.path.name.removeprefix(f"{name}-")
        assert meta["config"]["recipe"] >= 1
        assert "onnxruntime" in meta["versions"] or "torch" in meta["versions"]
        assert meta["metrics"]["accuracy"] >= MIN_FP32_ACCURACY - 0.01


def test_a_second_build_reuses_every_artefact_without_training(artifacts: Artifacts) -> None:
    t0 = time.monotonic()
    again = build("quick", cache_dir=artifacts.cache_dir)
    assert again.built == ()
    assert again.keys == artifacts.keys
    assert time.monotonic() - t0 < 10


def test_changing_the_fuser_config_changes_only_downstream_keys() -> None:
    quick = PROFILES["quick"]
    before = {k: s.key for k, s in plan(quick).items()}
    after = {
        k: s.key for k, s in plan(dataclasses.replace(quick, fuse=FuseConfig(num_heads=6))).items()
    }
    changed = {k for k in before if before[k] != after[k]}
    # The distilled student is fused and quantised with the same configs.
    assert changed == {"fuse", "quantize_dynamic", "distill_fuse", "distill_int8"}


def test_quick_and_full_profiles_share_nothing_from_fine_tuning_on() -> None:
    quick = {k: s.key for k, s in plan("quick").items()}
    full = {k: s.key for k, s in plan("full").items()}
    assert all(quick[k] != full[k] for k in quick)


def test_a_changed_quantisation_config_rebuilds_only_the_dynamic_int8_steps(
    artifacts: Artifacts, tmp_path: Path
) -> None:
    # A private cache that links to the session's artefacts, so the variant's new artefact
    # does not linger in the shared cache and the rebuild happens on every run.
    for artefact in artifacts.steps.values():
        (tmp_path / artefact.path.name).symlink_to(artefact.path, target_is_directory=True)
    variant = dataclasses.replace(PROFILES["quick"], dynamic=DynamicQuantConfig(per_channel=False))
    rebuilt = build(variant, cache_dir=tmp_path)
    int8_steps = ("quantize_dynamic", "distill_int8")  # the teacher's and the student's
    assert rebuilt.built == int8_steps
    unchanged = {k: v for k, v in artifacts.keys.items() if k not in int8_steps}
    assert {k: rebuilt.keys[k] for k in unchanged} == unchanged
    for step in int8_steps:
        assert rebuilt.keys[step] != artifacts.keys[step]
        assert rebuilt.metrics(step)["accuracy"] >= MIN_FP32_ACCURACY - 0.01


def test_an_unknown_profile_is_rejected_with_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"'fast' is not a valid profile\. Valid: quick, full"):
        plan("fast")
