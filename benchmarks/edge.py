"""The model on the device: the INT8 model in headless Chromium on ONNX Runtime Web (WebAssembly).

    .venv/bin/python benchmarks/edge.py [--profile quick|full] [--model int8|student|fused]
        [--loads 3] [--threads 2] [--warmup 200]

Each load is a fresh browser profile (a real cold start) on the page of ``reference_system.edge``:
cold start (model download, WebAssembly compile + session set-up, first prediction, and
navigation -> first label), then one batch-1 prediction per held-out review (2,000), each timed
in the page with ``performance.now()`` around tokenise + run + argmax, and its label compared
with ONNX Runtime's (Python, batch 1) for the same model. Per load: p50 / p99 / max, the cold
start's parts and the agreement; then the medians over the loads. Do not run it beside another
benchmark or the SLO suite: 2 cores are shared.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics

import numpy as np

from pytest_latency.core.env import cpu_model
from reference_system.build import build
from reference_system.data import load_splits
from reference_system.edge import run_in_browser

MODELS = {
    "int8": ("onnx_int8_dynamic", "ort-int8-dynamic"),
    "student": ("onnx_int8_student", "ort-int8-student"),
    "fused": ("onnx_fused", "ort-fused"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick", choices=("quick", "full"))
    parser.add_argument("--model", default="int8", choices=sorted(MODELS))
    parser.add_argument("--loads", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=200)
    args = parser.parse_args()

    artifacts = build(args.profile)
    attribute, backend = MODELS[args.model]
    texts = list(load_splits().test.texts)
    # Batch 1, as the page runs: INT8 dynamic quantisation scales activations over the whole
    # padded batch, so batched labels (evaluate()'s default) differ on ~1.7 % of reviews.
    with artifacts.predictor(backend) as predictor:
        reference = np.array([int(predictor.predict([t]).labels[0]) for t in texts])
    print(
        f"{cpu_model()}, {os.cpu_count()} cores, {platform.python_version()}; "
        f"profile {args.profile}, model {backend}, {args.threads} WebAssembly thread(s), "
        f"{len(texts)} held-out reviews per load, warm-up {args.warmup}"
    )
    header = "load  p50 ms  p99 ms  max ms  fetch ms  session ms  first ms  cold ms  agree"
    print(header)
    rows = []
    for load in range(1, args.loads + 1):
        run = run_in_browser(
            getattr(artifacts, attribute),
            artifacts.tokenizer_dir / "tokenizer.json",
            texts,
            warmup=args.warmup,
            threads=args.threads,
        )
        ms = np.sort(np.asarray(run.latencies_ms))
        n = len(ms)
        c = run.cold_start
        row = (
            float(ms[n // 2]),
            float(ms[int(np.ceil(0.99 * n)) - 1]),
            float(ms[-1]),
            c["model_fetch_ms"],
            c["session_ms"],
            c["first_prediction_ms"],
            c["total_ms"],
            float(np.mean(np.asarray(run.labels) == reference)),
        )
        rows.append(row)
        print(f"{load:>4}  " + "  ".join(f"{v:>6.1f}" for v in row[:-1]) + f"  {row[-1]:.2%}")
    medians = [statistics.median(col) for col in zip(*rows, strict=True)]
    print("  med  " + "  ".join(f"{v:>6.1f}" for v in medians[:-1]) + f"  {medians[-1]:.2%}")
    print(f"browser: {run.user_agent}; cross-origin isolated: {run.cross_origin_isolated}")


if __name__ == "__main__":
    main()
