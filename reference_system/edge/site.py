"""The page's own HTTP server: static files on 127.0.0.1 (port 0), and the channel back.

    with EdgeSite(job, model=path, tokenizer=path) as site:  # serves http://127.0.0.1:PORT/
        ...                                                  # open site.url in a browser
        site.wait("latencies", timeout_s=120)                # what the page posted

Routes: ``/`` the page, ``/page/*`` its scripts, ``/ort/*`` ONNX Runtime Web's files (the npm
package under ``node_modules``), ``/model.onnx`` and ``/tokenizer.json`` (the built artefacts,
as the Python predictors read them), ``/job.json`` (what to run), and ``POST /report``, where
the page posts JSON messages ``{"kind": ..., ...}``. A message of kind ``error`` ends every
wait with :class:`PageError`. Responses are never cached (each run is a cold start) and carry
the cross-origin isolation headers that multi-threaded WebAssembly needs.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

from reference_system.serving.ports import LOOPBACK

__all__ = ["EDGE_DIR", "ORT_WEB_DIR", "EdgeSite", "PageError", "PageTimeout"]

EDGE_DIR = Path(__file__).resolve().parent
PAGE_DIR = EDGE_DIR / "page"
ORT_WEB_DIR = EDGE_DIR / "node_modules" / "onnxruntime-web" / "dist"
MAX_REPORT_BYTES = 64 * 1024 * 1024
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".wasm": "application/wasm",
    ".onnx": "application/octet-stream",
}


class PageError(RuntimeError):
    """The page reported an error (its message and stack), or posted something unreadable."""


class PageTimeout(TimeoutError):
    """The page did not post what was awaited in time."""


class EdgeSite:
    def __init__(self, job: Mapping[str, Any], *, model: Path, tokenizer: Path) -> None:
        self._files = {"/model.onnx": model, "/tokenizer.json": tokenizer}
        self._job = json.dumps({**job, "model": "/model.onnx", "tokenizer": "/tokenizer.json"})
        self._messages: dict[str, dict[str, Any]] = {}
        self._changed = threading.Condition()
        self.requests: list[str] = []
        self._server = ThreadingHTTPServer((LOOPBACK, 0), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/"

    def _resolve(self, path: str) -> Path | None:
        if path in ("/", "/index.html"):
            return PAGE_DIR / "index.html"
        if path in self._files:
            return self._files[path]
        for prefix, root in (("/page/", PAGE_DIR), ("/ort/", ORT_WEB_DIR)):
            if path.startswith(prefix):
                candidate = (root / path[len(prefix) :]).resolve()
                if candidate.is_relative_to(root) and candidate.is_file():
                    return candidate
        return None

    def _post(self, message: Any) -> None:
        with self._changed:
            if not isinstance(message, dict) or not isinstance(message.get("kind"), str):
                message = {"kind": "error", "error": f"unreadable report: {message!r:.200}"}
            self._messages[message["kind"]] = message
            self._changed.notify_all()

    def seen(self, kind: str) -> bool:
        with self._changed:
            return kind in self._messages

    def wait(self, kind: str, timeout_s: float) -> dict[str, Any]:
        """The page's message of `kind`; :class:`PageError` if it reported an error first,
        :class:`PageTimeout` after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                if "error" in self._messages:
                    raise PageError(f"the page failed: {self._messages['error'].get('error')}")
                if kind in self._messages:
                    return self._messages[kind]
                left = deadline - time.monotonic()
                if left <= 0:
                    got = ", ".join(sorted(self._messages)) or "nothing"
                    raise PageTimeout(
                        f"the page did not report {kind!r} within {timeout_s:g} s (it had "
                        f"reported: {got}; requests served: {len(self.requests)})"
                    )
                self._changed.wait(min(left, 1.0))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                site.requests.append(self.path)

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.send_header("Cross-Origin-Opener-Policy", "same-origin")
                self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/job.json":
                    self._send(HTTPStatus.OK, site._job.encode(), _TYPES[".json"])
                    return
                file = site._resolve(path)
                if file is None:
                    self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")
                    return
                content_type = _TYPES.get(file.suffix, "application/octet-stream")
                self._send(HTTPStatus.OK, file.read_bytes(), content_type)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if self.path != "/report" or not 0 < length <= MAX_REPORT_BYTES:
                    self._send(
                        HTTPStatus.BAD_REQUEST, b"POST /report with a JSON body", "text/plain"
                    )
                    return
                try:
                    message = json.loads(self.rfile.read(length))
                except ValueError as exc:
                    message = {"kind": "error", "error": f"a report that is not JSON: {exc}"}
                site._post(message)
                self._send(HTTPStatus.NO_CONTENT, b"", "text/plain")

        return Handler

    def start(self) -> Self:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="edge-site", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
