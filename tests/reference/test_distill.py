"""Distillation: the loss, the student's layers, its cache keys, and the built student."""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

import pytest

from reference_system.build import PROFILES, STEPS, Artifacts, plan
from reference_system.distill import (
    DistillConfig,
    check_layers,
    distillation_loss,
    student_from_teacher,
)
from reference_system.onnx_steps import FuseConfig, op_counts

STUDENT_STEPS = {"distill", "distill_export", "distill_fuse", "distill_int8"}


def _keys(profile: Any) -> dict[str, str]:
    return {name: spec.key for name, spec in plan(profile).items()}


def test_plan_has_a_key_for_every_step_including_the_students() -> None:
    assert tuple(plan("quick")) == STEPS
    assert set(STEPS) >= STUDENT_STEPS


#: a different value for each DistillConfig field, whatever the profile's value is
OTHER_VALUE: dict[str, Any] = {
    "layers": lambda v: (1, 3, 5) if v != (1, 3, 5) else (0, 2, 4),
    "temperature": lambda v: v + 1.0,
    "alpha": lambda v: v / 2,
    "epochs": lambda v: v + 1,
    "learning_rate": lambda v: v * 2,
    "train_examples": lambda v: 5000 if v != 5000 else 6000,
}


def test_every_distill_config_field_is_covered_by_the_key_test() -> None:
    assert set(OTHER_VALUE) == {f.name for f in dataclasses.fields(DistillConfig)}


@pytest.mark.parametrize("field", sorted(OTHER_VALUE))
def test_changing_the_distill_config_rebuilds_only_the_students_steps(field: str) -> None:
    quick = PROFILES["quick"]
    value = OTHER_VALUE[field](getattr(quick.distill, field))
    variant = dataclasses.replace(
        quick, distill=dataclasses.replace(quick.distill, **{field: value})
    )
    before, after = _keys(quick), _keys(variant)
    assert {k for k in before if before[k] != after[k]} == STUDENT_STEPS


def test_the_student_follows_the_teachers_fine_tuning_and_the_shared_fuser_config() -> None:
    quick = PROFILES["quick"]
    retrained = dataclasses.replace(quick, train=dataclasses.replace(quick.train, seed=14))
    before, after = _keys(quick), _keys(retrained)
    assert all(before[k] != after[k] for k in before)
    other_fuser = _keys(dataclasses.replace(quick, fuse=FuseConfig(num_heads=6)))
    assert {k for k in before if before[k] != other_fuser[k]} == {
        "fuse",
        "quantize_dynamic",
        "distill_fuse",
        "distill_int8",
    }


def test_distillation_loss_matches_a_hand_computation() -> None:
    torch = pytest.importorskip("torch")
    student = [[1.0, -1.0], [0.5, 2.0]]
    teacher = [[2.0, 0.0], [-1.0, 1.0]]
    labels = [0, 1]
    t, alpha = 2.0, 0.25

    def softmax(row: list[float], temp: float) -> list[float]:
        exps = [math.exp(x / temp) for x in row]
        return [e / sum(exps) for e in exps]

    kl = sum(
        sum(p * math.log(p / q) for p, q in zip(softmax(tr, t), softmax(sr, t), strict=True))
        for sr, tr in zip(student, teacher, strict=True)
    ) / len(student)
    ce = -sum(math.log(softmax(sr, 1.0)[y]) for sr, y in zip(student, labels, strict=True)) / 2
    expected = alpha * t * t * kl + (1 - alpha) * ce

    got = distillation_loss(
        torch.tensor(student),
        torch.tensor(teacher),
        torch.tensor(labels),
        temperature=t,
        alpha=alpha,
    )
    assert float(got) == pytest.approx(expected, rel=1e-6)


def test_distillation_loss_is_zero_soft_term_when_student_equals_teacher() -> None:
    torch = pytest.importorskip("torch")
    logits = torch.tensor([[0.3, -0.2], [1.5, 0.1]])
    labels = torch.tensor([1, 0])
    soft_only = distillation_loss(logits, logits, labels, temperature=3.0, alpha=1.0)
    assert float(soft_only) == pytest.approx(0.0, abs=1e-7)
    hard_only = distillation_loss(logits, logits * 7, labels, temperature=3.0, alpha=0.0)
    assert float(hard_only) == pytest.approx(
        float(torch.nn.functional.cross_entropy(logits, labels))
    )


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        (
            (0, 2, 6),
            r"DistillConfig\.layers: 6 is not a layer of the 6-layer teacher\. Valid: "
            r"1 to 5 distinct indices from 0 to 5 in increasing order",
        ),
        ((-1, 2), r"-1 is not a layer of the 6-layer teacher\. Valid: "),
        ((0, 2.0), r"2\.0 is not a layer index \(an int\)\. Valid: "),
        ((2, 2, 4), r"layers=\(2, 2, 4\) repeats or reorders layers\. Valid: "),
        ((4, 2), r"layers=\(4, 2\) repeats or reorders layers\. Valid: "),
        ((), r"layers=\(\) keeps 0 of the teacher's 6 layers; a student must be smaller\."),
        ((0, 1, 2, 3, 4, 5), r"keeps 6 of the teacher's 6 layers; a student must be smaller\."),
    ],
)
def test_a_bad_layer_selection_names_the_bad_value_and_the_valid_ones(
    layers: tuple[Any, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        check_layers(layers, 6)


def test_a_bad_layer_selection_fails_when_the_build_is_planned() -> None:
    quick = PROFILES["quick"]
    bad = dataclasses.replace(quick, distill=DistillConfig(layers=(0, 3, 7)))
    with pytest.raises(ValueError, match=r"7 is not a layer of the 6-layer teacher"):
        plan(bad)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("temperature", 0.0, r"temperature=0\.0: expected a number > 0"),
        ("alpha", 1.5, r"alpha=1\.5: expected a number in \[0, 1\]"),
        ("epochs", 0, r"epochs=0: expected an integer >= 1"),
        ("learning_rate", -1e-4, r"learning_rate=-0\.0001: expected a number > 0"),
        ("train_examples", 0, r"train_examples=0: expected None \(all\) or an integer >= 1"),
    ],
)
def test_a_bad_distill_config_value_is_rejected_with_the_expectation(
    field: str, value: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        DistillConfig(**{field: value})


def test_the_student_copies_the_chosen_layers_and_everything_else_from_the_teacher() -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        vocab_size=50,
        hidden_size=8,
        num_hidden_layers=6,
        num_attention_heads=2,
        intermediate_size=16,
        num_labels=2,
    )
    torch.manual_seed(0)
    teacher = transformers.BertForSequenceClassification(config).eval()
    student = student_from_teacher(teacher, (0, 2, 5)).eval()
    assert student.config.num_hidden_layers == 3
    assert teacher.config.num_hidden_layers == 6
    teacher_state = teacher.state_dict()
    kept = {0: 0, 1: 2, 2: 5}  # student layer -> teacher layer
    for key, tensor in student.state_dict().items():
        source = re.sub(
            r"encoder\.layer\.(\d+)\.", lambda m: f"encoder.layer.{kept[int(m[1])]}.", key
        )
        assert torch.equal(tensor, teacher_state[source]), key
    ids = torch.tensor([[2, 7, 9, 3]])
    assert student(input_ids=ids).logits.shape == (1, 2)


# -- the built student (quick profile, from the session's build) --


def test_the_student_is_a_3_layer_model_whose_fused_graph_has_3_attention_nodes(
    artifacts: Artifacts,
) -> None:
    meta = artifacts.metrics("distill")
    assert meta["layers"] == list(PROFILES[artifacts.profile].distill.layers)
    assert meta["teacher_layers"] == 6
    assert meta["student_parameters"] < meta["teacher_parameters"]
    ops = op_counts(artifacts.steps["distill_fuse"].file("model.onnx"))
    assert ops.get("Attention") == 3
    assert ops.get("EmbedLayerNormalization") == 1
    assert "Softmax" not in ops


def test_the_student_records_its_accuracy_and_agreement_with_the_teacher(
    artifacts: Artifacts,
) -> None:
    meta = artifacts.metrics("distill")
    assert meta["test_examples"] == 2_000
    # The same PyTorch evaluation as the fine-tune step's, one process later.
    assert meta["teacher_accuracy"] == pytest.approx(
        artifacts.metrics("finetune")["accuracy"], abs=1e-3
    )
    assert meta["teacher_agreement"] >= 0.9
    assert meta["teacher_logits_seconds"] > 0
    assert meta["train_seconds"] > 0


def test_the_students_onnx_steps_are_checked_against_its_own_fp32_export(
    artifacts: Artifacts,
) -> None:
    export = artifacts.metrics("distill_export")["vs_reference"]
    assert export["label_agreement"] == 1.0
    assert export["max_abs_logit_diff"] < 1e-4
    assert artifacts.metrics("distill_fuse")["vs_reference"]["label_agreement"] == 1.0
    int8 = artifacts.metrics("distill_int8")
    assert int8["vs_reference"]["label_agreement"] >= 0.97
    assert int8["accuracy"] >= artifacts.metrics("distill_export")["accuracy"] - 0.01
    fp32_size = artifacts.steps["distill_export"].file("model.onnx").stat().st_size
    assert 3.5 < fp32_size / artifacts.onnx_int8_student.stat().st_size < 4.5
