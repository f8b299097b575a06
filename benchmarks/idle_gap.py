"""What an idle gap between requests costs the model: the student INT8 model, batch 1.

    .venv/bin/python benchmarks/idle_gap.py [--profile quick|full] [--calls 150] [--rounds 4]

One onnxruntime session (1 intra-op thread, as in the co-located front) runs a held-out review
after a gap of 0, 2, 10 or 50 ms (50 ms is what 20 rps looks like to one request), gaps
alternated in blocks of `--calls`, order reversed every round. Then, with a 50 ms gap, the gap
spent asleep against busy-waiting (a busy vCPU is never halted: if sleeping were the cost,
busy-waiting would remove it; if the weights leaving the CPU caches are, it would not).
Prints p50 / p90 / p99 per variant. docs/serving.md, "Keeping the weights warm", has a run.
Do not run this beside another benchmark or the SLO suite: 2 cores are shared.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

import numpy as np

from pytest_latency.core.env import cpu_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="quick", choices=("quick", "full"))
    parser.add_argument("--calls", type=int, default=150, help="calls per block")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    if args.calls < 10 or args.rounds < 1:
        parser.error(f"--calls must be >= 10 and --rounds >= 1, got {args.calls}, {args.rounds}")

    import onnxruntime as ort  # type: ignore[import-untyped]
    from tokenizers import Tokenizer

    from reference_system.build import build
    from reference_system.data import load_splits

    artifacts = build(args.profile)
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        str(artifacts.onnx_int8_student), options, providers=["CPUExecutionProvider"]
    )
    names = {i.name for i in session.get_inputs()}
    tok = Tokenizer.from_file(str(artifacts.tokenizer_dir / "tokenizer.json"))
    feeds = []
    for text in list(load_splits().test.texts)[:64]:
        e = tok.encode(text)
        f = {
            "input_ids": np.array([e.ids], np.int64),
            "attention_mask": np.array([e.attention_mask], np.int64),
            "token_type_ids": np.array([e.type_ids], np.int64),
        }
        feeds.append({k: v for k, v in f.items() if k in names})

    def spin(seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass

    variants: dict[str, tuple[float, Callable[[float], None]]] = {
        "gap 0 ms": (0.0, time.sleep),
        "gap 2 ms (sleep)": (0.002, time.sleep),
        "gap 10 ms (sleep)": (0.010, time.sleep),
        "gap 50 ms (sleep)": (0.050, time.sleep),
        "gap 50 ms (busy-wait)": (0.050, spin),
    }
    times: dict[str, list[float]] = {v: [] for v in variants}
    order = list(variants)
    for r in range(args.rounds):
        for v in order if r % 2 == 0 else order[::-1]:
            gap, wait = variants[v]
            for i in range(args.calls):
                if gap:
                    wait(gap)
                t0 = time.perf_counter_ns()
                session.run(["logits"], feeds[i % len(feeds)])
                times[v].append((time.perf_counter_ns() - t0) / 1e6)
    print(
        f"# benchmarks/idle_gap.py --profile {args.profile} --calls {args.calls} "
        f"--rounds {args.rounds}: {cpu_model()}, {len(os.sched_getaffinity(0))} cores, "
        f"Python {platform.python_version()}\n"
    )
    print("| variant | n | p50 ms | p90 ms | p99 ms |\n|---|---|---|---|---|")
    for v, t in times.items():
        p50, p90, p99 = np.percentile(t, [50, 90, 99])
        print(f"| {v} | {len(t)} | {p50:.2f} | {p90:.2f} | {p99:.2f} |")


if __name__ == "__main__":
    main()
