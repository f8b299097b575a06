"""The optimisation ladder, from one run: every model variant at batch 1.

    .venv/bin/python benchmarks/ladder.py [--profile quick|full] [--rounds 12] [--block 50]

For each variant: p50 and p99 latency of one review per call, at the held-out split's natural
length mix and at a fixed 128 tokens; speed-up of p50 and p99 against the PyTorch FP32
baseline; held-out accuracy and its drop against the baseline; model size on disk. The last
rung, ort-int8-student, is a 3-layer student distilled from the baseline (the teacher), so its
drop is against its teacher.

Variants are alternated in blocks of `--block` calls, `--rounds` times, in a rotating order
(never call by call: ONNX Runtime's thread pool distorts a neighbour that interleaves per
call). Timing uses pytest-latency's own serial driver (GC off inside a block).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import platform
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from pytest_latency.core.drivers import Call, SerialDriver
from pytest_latency.core.env import cpu_model

VARIANTS = (
    "torch-fp32",
    "ort-fp32",
    "ort-fused",
    "ort-int8-dynamic",
    "ort-int8-static",
    "ort-int8-student",
)
STEP_OF = {
    "torch-fp32": "finetune",
    "ort-fp32": "export",
    "ort-fused": "fuse",
    "ort-int8-dynamic": "quantize_dynamic",
    "ort-int8-static": "quantize_static",
    # the 3-layer student distilled from the fine-tuned model, fused and INT8 like the rung above
    "ort-int8-student": "distill_int8",
}
FAR = 2**62


def caller(predictor: Any, texts: list[str]) -> Callable[[], Any]:
    stream = itertools.cycle(texts)
    predict = predictor.predict
    return lambda: predict([next(stream)])


def size_mb(path: Any) -> float:
    if path.is_file():
        return path.stat().st_size / 1e6
    return (
        sum(
            p.stat().st_size
            for p in path.rglob("*")
            if p.is_file() and p.suffix in (".safetensors", ".bin", ".onnx", ".data")
        )
        / 1e6
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="quick", choices=("quick", "full"))
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--block", type=int, default=50)
    args = parser.parse_args()

    from reference_system.build import build
    from reference_system.data import load_splits

    artifacts = build(args.profile)
    texts = list(load_splits().test.texts[:1000])
    long_text = " ".join(texts[:20])  # truncated by the tokenizer to exactly 128 tokens
    predictors = {
        name: artifacts.predictor(name)
        if name == "torch-fp32"
        else artifacts.predictor(name, allow_spinning=False)
        for name in VARIANTS
    }
    workloads = {"reviews": texts, "seq128": [long_text]}
    samples: dict[tuple[str, str], list[int]] = {(v, w): [] for v in VARIANTS for w in workloads}
    drivers = {
        (v, w): SerialDriver(Call(caller(predictors[v], ws), (), {}, None))
        for v in VARIANTS
        for w, ws in workloads.items()
    }
    for driver in drivers.values():  # warm every variant and workload before timing any
        driver.run_block(30, FAR)
    keys = list(drivers)
    for r in range(args.rounds):
        shift = r % len(keys)
        for key in keys[shift:] + keys[:shift]:
            gc.disable()
            try:
                block = drivers[key].run_block(args.block, FAR)
            finally:
                gc.enable()
            samples[key].extend(block.latencies_ns)
            gc.collect(1)

    def pct(key: tuple[str, str], q: float) -> float:
        data = np.sort(np.asarray(samples[key]))
        return float(data[int(np.ceil(q * len(data))) - 1]) / 1e6

    base_acc = artifacts.metrics("finetune").get("accuracy") or 0.0
    print(
        f"machine: {cpu_model()} x{len(os.sched_getaffinity(0))}, Python "
        f"{platform.python_version()}, profile {args.profile}, {args.rounds} rounds x "
        f"{args.block}-call blocks per variant and workload (n={args.rounds * args.block})"
    )
    header = (
        "| variant | reviews p50 ms | reviews p99 ms | p50 speed-up | p99 speed-up | "
        "seq128 p50 ms | seq128 p99 ms | seq128 p99 speed-up | accuracy | drop pt | "
        "size MB |"
    )
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for v in VARIANTS:
        acc = artifacts.metrics(STEP_OF[v]).get("accuracy")
        path = (
            artifacts.model_dir
            if v == "torch-fp32"
            else artifacts.steps[STEP_OF[v]].file("model.onnx")
        )
        print(
            f"| {v} | {pct((v, 'reviews'), 0.5):.2f} | {pct((v, 'reviews'), 0.99):.2f} | "
            f"{pct(('torch-fp32', 'reviews'), 0.5) / pct((v, 'reviews'), 0.5):.2f}x | "
            f"{pct(('torch-fp32', 'reviews'), 0.99) / pct((v, 'reviews'), 0.99):.2f}x | "
            f"{pct((v, 'seq128'), 0.5):.2f} | {pct((v, 'seq128'), 0.99):.2f} | "
            f"{pct(('torch-fp32', 'seq128'), 0.99) / pct((v, 'seq128'), 0.99):.2f}x | "
            f"{acc:.2%} | {(base_acc - acc) * 100:+.2f} | {size_mb(path):.1f} |"
            if acc is not None
            else f"| {v} | (no accuracy recorded) |"
        )
    for p in predictors.values():
        p.close()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
