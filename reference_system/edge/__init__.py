"""The model on the device: the INT8 model in a real browser, on ONNX Runtime Web (WebAssembly).

    from reference_system.edge import run_in_browser
    run = run_in_browser(artifacts.onnx_int8_dynamic, artifacts.tokenizer_dir / "tokenizer.json",
                         texts, warmup=200)
    run.labels              # one batch-1 prediction per text, for an agreement gate
    run.latencies_ms        # each one's latency, timed in the page with performance.now()
    run.cold_start          # model download, WebAssembly compile + session set-up, first call

A static page (``page/``) tokenises in JavaScript (``page/wordpiece.mjs``: the same
``tokenizer.json`` and WordPiece rules as the Python side) and runs the model with the npm
package ``onnxruntime-web`` (``npm ci`` in this folder; ``./dev`` does it). The page, the model
and the WebAssembly files are served on 127.0.0.1 by :class:`~.site.EdgeSite`; headless
Chromium (:class:`~.browser.HeadlessChromium`) opens it with a fresh profile, so the first
load is a real cold start; the page posts its measurements back to the same server. Details:
docs/edge.md.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reference_system.edge.browser import CHROMIUM_INSTALL, HeadlessChromium, find_chromium
from reference_system.edge.site import EDGE_DIR, ORT_WEB_DIR, EdgeSite, PageError, PageTimeout

__all__ = [
    "CHROMIUM_INSTALL",
    "NPM_INSTALL",
    "EdgeRun",
    "EdgeUnavailable",
    "PageError",
    "PageTimeout",
    "missing",
    "run_in_browser",
]

NPM_INSTALL = f"npm ci --prefix {EDGE_DIR.relative_to(EDGE_DIR.parents[1])}"


class EdgeUnavailable(RuntimeError):
    """Chromium or onnxruntime-web is not installed; the message says how to install it."""


def missing() -> str | None:
    """Why the browser runtime cannot run here, with the install command; None when it can."""
    if find_chromium() is None:
        return f"no headless Chromium found; install it: {CHROMIUM_INSTALL}"
    if not (ORT_WEB_DIR / "ort.wasm.min.mjs").is_file():
        return f"onnxruntime-web is not installed under {EDGE_DIR}; run: {NPM_INSTALL}"
    return None


@dataclass(frozen=True)
class EdgeRun:
    """What one page load measured."""

    user_agent: str
    threads: int
    cross_origin_isolated: bool  # without it, ONNX Runtime Web runs on one thread whatever asked
    cold_start: dict[str, Any]  # *_ms figures of the first load, as posted by the page
    labels: list[int]  # per text, in order
    latencies_ms: list[float]  # per text, in order (after the warm-up)
    wall_s: float  # from the first timed prediction's start to the last one's end


def run_in_browser(
    model: Path,
    tokenizer: Path,
    texts: Sequence[str],
    *,
    warmup: int = 100,
    threads: int = 1,
    max_length: int = 128,
    timeout_s: float = 300.0,
) -> EdgeRun:
    """Open the page in headless Chromium and wait (at most `timeout_s` in all) for its cold
    start, then a label and a latency per text (batch 1, after `warmup` untimed predictions);
    the browser and the server are stopped however this ends."""
    if not texts or warmup < 0 or threads < 1 or max_length < 2:
        raise ValueError(
            f"need texts, warmup >= 0, threads >= 1 and max_length >= 2; got {len(texts)} "
            f"text(s), warmup={warmup}, threads={threads}, max_length={max_length}"
        )
    reason = missing()
    if reason:
        raise EdgeUnavailable(reason)
    job = {"texts": list(texts), "warmup": warmup, "threads": threads, "max_length": max_length}
    deadline = time.monotonic() + timeout_s

    def left() -> float:
        return max(0.0, deadline - time.monotonic())

    with (
        EdgeSite(job, model=model, tokenizer=tokenizer) as site,
        HeadlessChromium(
            site.url,
            ready=lambda: site.seen("hello") or site.seen("error"),
            start_timeout_s=min(60.0, timeout_s),
        ),
    ):
        hello = site.wait("hello", left())
        cold = site.wait("cold_start", left())
        done = site.wait("results", left())
    labels, latencies = done.get("labels"), done.get("latencies_ms")
    if not (isinstance(labels, list) and isinstance(latencies, list)) or not (
        len(labels) == len(latencies) == len(texts)
    ):
        raise PageError(
            f"the page posted {len(labels or [])} label(s) and {len(latencies or [])} "
            f"latencies for {len(texts)} text(s)"
        )
    return EdgeRun(
        user_agent=str(hello.get("userAgent")),
        threads=threads,
        cross_origin_isolated=hello.get("crossOriginIsolated") is True,
        cold_start={k: v for k, v in cold.items() if k != "kind"},
        labels=[int(x) for x in labels],
        latencies_ms=[float(x) for x in latencies],
        wall_s=float(done["wall_ms"]) / 1000,
    )
