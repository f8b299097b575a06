"""A trivial HTTP server on 127.0.0.1 for the Locust engine's tests (one write per reply:
no Nagle/delayed-ACK stall), which can stall every reply for a while mid-run, and a client
callable that tells the server which process sent it."""

from __future__ import annotations

import contextlib
import os
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REPLY = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class Server(ThreadingHTTPServer):
    daemon_threads = True
    stall_from_s: float | None = None  # seconds after the first request
    stall_s = 0.0
    first: float | None = None
    pids: set[str]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def _reply(self) -> None:
        server = self.server
        now = time.monotonic()
        if server.first is None:
            server.first = now
        if server.stall_from_s is not None:
            stall_at = server.first + server.stall_from_s
            if stall_at <= now < stall_at + server.stall_s:
                time.sleep(stall_at + server.stall_s - now)
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        pid = self.headers.get("X-Pid")
        if pid:
            server.pids.add(pid)
        self.wfile.write(REPLY)

    do_GET = do_POST = _reply

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve(stall_from_s: float | None = None, stall_s: float = 0.0) -> Iterator[Server]:
    server = Server(("127.0.0.1", 0), Handler)
    server.stall_from_s, server.stall_s, server.pids = stall_from_s, stall_s, set()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def url(server: Server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/"


def get_with_pid(target: str) -> None:
    """A client for ``latency.remote``: one GET that names this process."""
    request = urllib.request.Request(target, headers={"X-Pid": str(os.getpid())})
    with urllib.request.urlopen(request, timeout=30) as reply:
        reply.read()


_local = threading.local()


def keepalive_get(target: str) -> None:
    """An in-process client with one kept-alive connection per thread (as the workers')."""
    import http.client
    from urllib.parse import urlsplit

    conn = getattr(_local, "conn", None)
    if conn is None:
        parts = urlsplit(target)
        conn = _local.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.request("GET", "/")
    conn.getresponse().read()


def die_at_100(i: int) -> dict[str, object]:
    """Payloads for ``latency.http``: the worker that issues arrival 100 dies on the spot."""
    if i == 100:
        os._exit(1)
    return {}


async def async_call() -> None:
    """Not for Locust workers: they run sync callables only."""
