"""Distil the fine-tuned 6-layer teacher into a 3-layer student on its soft labels.

The student is the teacher with some transformer layers dropped: the same embeddings, pooler,
classifier head and tokenizer, and the kept layers' weights as its starting point (DistilBERT's
initialisation from teacher layers). It is then trained offline against the teacher's logits,
computed once over the training texts (no teacher forward pass per step), with

    loss = alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))
           + (1 - alpha) * cross_entropy(student, hard labels)

(Hinton et al. 2015: the ``T^2`` keeps the soft term's gradients on the hard term's scale as
``T`` grows). Training reuses :func:`reference_system.training.train_classifier`: the same
optimiser, LR schedule, length-grouped batches, threads, seeds and offline loading as
fine-tuning (with torch's fused AdamW kernel, faster per step here).

Choices (measured on the ``quick`` teacher; the table of runs is in docs/reference_system.md,
"Figures that used to sit in code comments"): layers and temperature were picked on the
calibration split, not the test split. Keeping the bottom and the top layer (0, 2, 5) wins: the
pooler and classifier were trained on layer 5's output, and layer 0 sits on the embeddings.
Temperatures 2-4 are within noise; 3 is kept. More epochs help most, hence 3.

Example::

    from reference_system.distill import DistillConfig, distill
    metrics = distill(teacher_dir, splits.train, DistillConfig(), TrainConfig(), out_dir)
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from reference_system.cache import log
from reference_system.data import Dataset
from reference_system.training import (
    TrainConfig,
    base_model_dir,
    load_classifier,
    seed_everything,
    train_classifier,
)

__all__ = [
    "DistillConfig",
    "check_layers",
    "distill",
    "distillation_loss",
    "student_from_teacher",
    "teacher_layer_count",
    "teacher_logits",
]

_LAYER_KEY = re.compile(r"^(?P<head>.*\.encoder\.layer\.)(?P<index>\d+)\.(?P<tail>.*)$")


@dataclass(frozen=True)
class DistillConfig:
    """The student and its training; every field enters the ``distill`` step's cache key.

    The batch size, sequence length, warm-up, weight decay, seed and threads are the profile's
    :class:`~reference_system.training.TrainConfig` ones (see :meth:`train_config`).
    """

    #: teacher layers the student keeps, in order (indices into the teacher's 6)
    layers: tuple[int, ...] = (0, 2, 5)
    temperature: float = 3.0
    #: weight of the soft (teacher) term; 1 - alpha goes to the hard labels
    alpha: float = 0.7
    epochs: int = 3
    learning_rate: float = 1e-4
    train_examples: int | None = None  # None: the whole train split

    def __post_init__(self) -> None:
        problems = []
        if not (isinstance(self.temperature, int | float) and self.temperature > 0):
            problems.append(f"temperature={self.temperature!r}: expected a number > 0")
        if not (isinstance(self.alpha, int | float) and 0 <= self.alpha <= 1):
            problems.append(f"alpha={self.alpha!r}: expected a number in [0, 1]")
        if not (isinstance(self.epochs, int) and self.epochs >= 1):
            problems.append(f"epochs={self.epochs!r}: expected an integer >= 1")
        if not (isinstance(self.learning_rate, int | float) and self.learning_rate > 0):
            problems.append(f"learning_rate={self.learning_rate!r}: expected a number > 0")
        if self.train_examples is not None and not (
            isinstance(self.train_examples, int) and self.train_examples >= 1
        ):
            problems.append(
                f"train_examples={self.train_examples!r}: expected None (all) or an integer >= 1"
            )
        if problems:
            raise ValueError("DistillConfig: " + "; ".join(problems))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def train_config(self, base: TrainConfig) -> TrainConfig:
        """The student's training knobs: ``base`` with this config's data, epochs and LR."""
        return dataclasses.replace(
            base,
            train_examples=self.train_examples,
            epochs=self.epochs,
            learning_rate=self.learning_rate,
        )


def teacher_layer_count() -> int:
    """The teacher's transformer layers: the base model's ``num_hidden_layers`` (6)."""
    config = json.loads((base_model_dir() / "config.json").read_text())
    return int(config["num_hidden_layers"])


def check_layers(layers: Sequence[int], teacher_layers: int) -> tuple[int, ...]:
    """``layers`` as a tuple if they select a smaller student from the teacher, else ValueError.

    Valid: distinct layer indices of the teacher in increasing order, at least one and fewer
    than all of them. A bad selection fails when the build is planned, before any training.
    """
    valid = (
        f"Valid: 1 to {teacher_layers - 1} distinct indices from 0 to {teacher_layers - 1} "
        "in increasing order, e.g. (0, 2, 5)"
    )
    for value in layers:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(
                f"DistillConfig.layers: {value!r} is not a layer index (an int). {valid}"
            )
        if not 0 <= value < teacher_layers:
            raise ValueError(
                f"DistillConfig.layers: {value!r} is not a layer of the {teacher_layers}-layer "
                f"teacher. {valid}"
            )
    chosen = tuple(layers)
    if not 1 <= len(chosen) < teacher_layers:
        raise ValueError(
            f"DistillConfig.layers={chosen!r} keeps {len(chosen)} of the teacher's "
            f"{teacher_layers} layers; a student must be smaller. {valid}"
        )
    if list(chosen) != sorted(set(chosen)):
        raise ValueError(f"DistillConfig.layers={chosen!r} repeats or reorders layers. {valid}")
    return chosen


def distillation_loss(
    student_logits: Any,
    teacher_logits: Any,
    labels: Any,
    *,
    temperature: float,
    alpha: float,
) -> Any:
    """``alpha * T^2 * KL(p_teacher_T || p_student_T) + (1 - alpha) * CE(student, labels)``.

    Both terms are means over the batch; ``p_x_T = softmax(logits_x / T)``.
    """
    import torch.nn.functional as F

    t = temperature
    soft = F.kl_div(
        F.log_softmax(student_logits / t, dim=-1),
        F.log_softmax(teacher_logits / t, dim=-1),
        reduction="batchmean",
        log_target=True,
    )
    hard = F.cross_entropy(student_logits, labels)
    return alpha * t * t * soft + (1 - alpha) * hard


def teacher_logits(
    teacher: Any, tokenizer: Any, texts: Sequence[str], *, max_length: int, batch_size: int = 64
) -> Any:
    """The teacher's logits for ``texts``, shape ``(n, 2)``, in eval mode (no dropout).

    Texts are batched by length (little padding); the result is in the original order.
    """
    import torch

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = torch.zeros((len(texts), 2), dtype=torch.float32)
    teacher.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            enc = tokenizer(
                [texts[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            out[idx] = teacher(**enc).logits.float()
    return out


def student_from_teacher(teacher: Any, layers: Sequence[int]) -> Any:
    """A copy of ``teacher`` keeping only ``layers`` (renumbered 0..k-1), everything else kept.

    Built from the teacher's config with ``num_hidden_layers=len(layers)`` and loaded with a
    strict ``load_state_dict``, so no weight is left freshly initialised.
    """
    from transformers import AutoModelForSequenceClassification

    auto: Any = AutoModelForSequenceClassification  # transformers' annotations are partial
    chosen = check_layers(layers, int(teacher.config.num_hidden_layers))
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = len(chosen)
    student: Any = auto.from_config(config, attn_implementation="eager")
    state: dict[str, Any] = {}
    for key, tensor in teacher.state_dict().items():
        m = _LAYER_KEY.match(key)
        if m is None:
            state[key] = tensor.clone()
        elif int(m["index"]) in chosen:
            state[f"{m['head']}{chosen.index(int(m['index']))}.{m['tail']}"] = tensor.clone()
    student.load_state_dict(state, strict=True)
    return student


def _parameters(model: Any) -> int:
    return sum(int(p.numel()) for p in model.parameters())


def distill(
    teacher_dir: Path,
    train: Dataset,
    config: DistillConfig,
    train_config: TrainConfig,
    out_dir: Path,
) -> dict[str, Any]:
    """Train the student on the teacher's soft labels; ``save_pretrained`` it into ``out_dir``.

    ``train_config`` is the profile's fine-tuning config (see :meth:`DistillConfig.train_config`).
    The teacher's tokenizer is saved with the student: they share it. Returns metrics.
    """
    import torch

    student_train = config.train_config(train_config)
    seed_everything(student_train)
    teacher, tokenizer = load_classifier(teacher_dir)
    data = (
        train
        if config.train_examples is None
        else train.take(config.train_examples, seed=student_train.seed)
    )
    t0 = time.monotonic()
    soft = teacher_logits(teacher, tokenizer, data.texts, max_length=student_train.max_length)
    logits_seconds = time.monotonic() - t0
    labels = torch.tensor(data.labels, dtype=torch.long)
    teacher_train_accuracy = float((soft.argmax(dim=-1) == labels).float().mean())
    log(
        f"distill: teacher logits for {len(data)} texts in {logits_seconds:.1f}s "
        f"(teacher accuracy on them {teacher_train_accuracy:.4f})"
    )
    teacher_params = _parameters(teacher)
    teacher_layers = int(teacher.config.num_hidden_layers)
    student = student_from_teacher(teacher, config.layers)
    del teacher
    t, alpha = config.temperature, config.alpha
    metrics = train_classifier(
        student,
        tokenizer,
        data,
        student_train,
        lambda m, enc, idx: distillation_loss(
            m(**enc).logits, soft[idx], labels[idx], temperature=t, alpha=alpha
        ),
        what="distill",
        fused_optimizer=True,
    )
    student.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    return {
        **metrics,
        "layers": list(config.layers),
        "teacher_layers": teacher_layers,
        "student_parameters": _parameters(student),
        "teacher_parameters": teacher_params,
        "teacher_logits_seconds": round(logits_seconds, 1),
        "teacher_train_accuracy": teacher_train_accuracy,
    }
