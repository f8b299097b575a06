"""The co-located optimised front: the INT8 model in the front's own process.

What a CPU-only deployment of this size should run: the optimised front's HTTP contract,
tokenizer and Redis cache, with the model on onnxruntime inside the uvicorn process instead of
one gRPC hop away on Triton. On a 2-core host the hop (gRPC, Triton's Python-backend stub IPC,
two more processes to schedule) costs more than the model itself; see docs/serving.md.

Per request, on a cache miss:

- one ``MGET`` on the event loop (``redis.asyncio``);
- tokenise one text (``Tokenizer.encode``: no batch thread pool for a single text);
- ``session.run`` **on the event loop thread** by default (``inference="inline"``): no
  thread-pool hop and no second thread to wake; ORT with 1 intra-op thread, so no intra-op
  pool to wake either. While it runs the loop serves nothing else, which at this offered load
  costs a concurrent request a few ms at worst (docs/serving.md, "Figures that used to sit in
  code comments"); ``inference="thread"`` moves the
  run to one dedicated thread instead, for comparison;
- the response is sent, then the cache entry is written (a background task after the body).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from reference_system.serving.backends import Answer, Counters, cache_aside, front_metrics

INFERENCE_MODES = ("inline", "thread")
# Keep-warm runs only this long after the last request: at 20 rps (Poisson) a gap that long
# has probability e^-20; an idle front stops burning CPU within a second.
KEEP_WARM_WINDOW_S = 1.0


class ColocatedBackend:
    """Tokenise -> Redis (cache-aside, fail-open) -> onnxruntime INT8 in this process.

    `connect_cache` makes the asyncio cache client inside the running loop (or returns None
    to run without a cache). ``predict`` returns the answer and a coroutine function that
    writes the misses to the cache; the app runs it after the response is sent.
    """

    def __init__(
        self,
        model_path: Path,
        tokenizer_dir: Path,
        connect_cache: Callable[[], Any | None],
        *,
        name: str = "ort-int8-dynamic@colocated",
        intra_op_threads: int = 1,
        allow_spinning: bool = True,
        inference: str = "inline",
        keep_warm_ms: float = 0.0,
        max_length: int = 128,
    ) -> None:
        if inference not in INFERENCE_MODES:
            raise ValueError(
                f"inference {inference!r} is not valid. Valid: {', '.join(INFERENCE_MODES)}"
            )
        if not 0 <= keep_warm_ms <= 1000:
            raise ValueError(f"keep_warm_ms must be 0 (off) to 1000, got {keep_warm_ms!r}")
        if isinstance(intra_op_threads, bool) or intra_op_threads < 1:
            raise ValueError(f"intra_op_threads must be an int >= 1, got {intra_op_threads!r}")
        import onnxruntime as ort  # type: ignore[import-untyped]
        from tokenizers import Tokenizer

        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if allow_spinning else "0"
        )
        self._session: Any = ort.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._tok = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
        self._tok.enable_truncation(max_length=max_length)
        pad_id = self._tok.token_to_id("[PAD]")
        self._tok.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token="[PAD]")
        self.name, self.inference = name, inference
        self.settings = {
            "intra_op_threads": intra_op_threads,
            "allow_spinning": allow_spinning,
            "inference": inference,
            "keep_warm_ms": keep_warm_ms,
        }
        self.keep_warm_ms = keep_warm_ms
        self._last_run_ns = self._last_request_ns = 0
        self._warm_runs = 0
        self._warm_task: asyncio.Task[None] | None = None
        self._connect_cache = connect_cache
        self.cache: Any | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._counters = Counters()

    def encode(self, texts: Sequence[str]) -> dict[str, npt.NDArray[np.int64]]:
        # One text: encode() runs on this thread; encode_batch() would hand it to a pool.
        encodings = (
            [self._tok.encode(texts[0])] if len(texts) == 1 else self._tok.encode_batch(texts)
        )
        feeds = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        return {k: v for k, v in feeds.items() if k in self._inputs}

    def run(self, feeds: dict[str, npt.NDArray[np.int64]]) -> npt.NDArray[np.float32]:
        (logits,) = self._session.run(["logits"], feeds)
        self._last_run_ns = time.monotonic_ns()
        return np.ascontiguousarray(logits, dtype=np.float32)

    async def _keep_warm(self) -> None:
        """Run the model on a fixed review whenever it has been idle for ``keep_warm_ms``,
        for as long as real requests keep coming (one within ``KEEP_WARM_WINDOW_S``).

        An idle gap of 50 ms (what 20 rps looks like to one request) slows the model's next
        call (its weights are evicted from the CPU caches); a run every few ms keeps them
        resident, at the price of that much CPU while idle (docs/serving.md, "Keeping the
        weights warm"). Without traffic it stops, so an idle front costs the host nothing."""
        period_ns = int(self.keep_warm_ms * 1e6)
        window_ns = int(KEEP_WARM_WINDOW_S * 1e9)
        feeds = self.encode(["a warm-up review of a film that keeps the weights cached"])
        while True:
            now = time.monotonic_ns()
            if now - self._last_request_ns > window_ns:
                await asyncio.sleep(0.1)  # no traffic: stay cold, look again in 100 ms
                continue
            idle_ns = now - self._last_run_ns
            if idle_ns >= period_ns:
                self.run(feeds)
                self._warm_runs += 1
                idle_ns = 0
            await asyncio.sleep((period_ns - idle_ns) / 1e9)

    async def start(self) -> None:
        """Connect the cache and run the model a few times before the first request."""
        if self.inference == "thread":
            self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ort")
        self.cache = self._connect_cache()
        if self.cache is not None:
            await self.cache.warm()
        for text in ("warm up", "a longer sentence to warm up the model with " * 4):
            self.run(self.encode([text]))
        if self.keep_warm_ms:
            self._warm_task = asyncio.get_running_loop().create_task(self._keep_warm())

    async def _infer(self, feeds: dict[str, npt.NDArray[np.int64]]) -> npt.NDArray[np.float32]:
        if self._pool is None:
            return self.run(feeds)
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.run, feeds)

    async def predict(self, texts: Sequence[str]) -> tuple[Answer, Callable[[], Any] | None]:
        self._last_request_ns = time.monotonic_ns()
        return await cache_aside(texts, self.cache, self.encode, self._infer, self._counters)

    def metrics(self) -> dict[str, Any]:
        return {
            **front_metrics(self.name, self._counters, self.cache),
            "settings": self.settings,
            "keep_warm_runs": self._warm_runs,
        }

    async def aclose(self) -> None:
        if self._warm_task is not None:
            self._warm_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._warm_task
            self._warm_task = None
        if self.cache is not None:
            await self.cache.aclose()
            self.cache = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._session = None

    def close(self) -> None:  # the Backend protocol; the app awaits aclose() instead
        pass
