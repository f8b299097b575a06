"""The load generator's HTTP client: one keep-alive HTTP/1.1 connection per thread, raw sockets.

An open-loop load generator in Python spends its own CPU on every request, on the same cores as
the service it measures, and that time lands in the measured latency. ``http.client`` parses
each response's headers with the ``email`` package and builds each request header by header;
httpx costs more still (and 17-34 ms per client made, docs/serving.md). This client sends one
pre-built request per call (headers and body in one ``sendall``) and parses only the status
line, ``Content-Length``, ``Connection`` and the headers asked for. What it saves is measured
in docs/serving.md ("The load generator's own cost").

It speaks exactly what the reference services answer: HTTP/1.1 responses with a
``Content-Length``; anything else (chunked bodies, a malformed status line) raises
``ProtocolError`` rather than being guessed at.
"""

from __future__ import annotations

import socket
import threading
import urllib.parse
from collections.abc import Generator
from dataclasses import dataclass, field

MAX_HEADER_BYTES = 64 * 1024


class ProtocolError(OSError):
    """The server's answer is not an HTTP/1.1 response this client can read."""


class StaleConnection(OSError):
    """A kept-alive connection the server closed before answering (it sent nothing)."""


def post_request(host: bytes, path: str, body: bytes, content_type: str) -> bytes:
    """One HTTP/1.1 POST, headers and body, ready for a single write."""
    return b"".join(
        (
            b"POST ",
            path.encode(),
            b" HTTP/1.1\r\nHost: ",
            host,
            b"\r\nContent-Type: ",
            content_type.encode(),
            b"\r\nContent-Length: ",
            str(len(body)).encode(),
            b"\r\n\r\n",
            body,
        )
    )


def parse_head(head: bytes, want: tuple[str, ...]) -> tuple[int, int, bool, dict[str, str]]:
    """A response's status line and headers (without the blank line) -> status,
    Content-Length, whether the connection stays open, and the headers in `want` (lower-case
    names). Raises ``ProtocolError`` on anything these clients do not read."""
    lines = head.decode("latin-1").split("\r\n")
    status_line = lines[0].split(" ", 2)
    if (
        len(status_line) < 2
        or not status_line[0].startswith("HTTP/1.")
        or not (status_line[1].isdigit())
    ):
        raise ProtocolError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    length, keep, headers = -1, status_line[0] == "HTTP/1.1", {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise ProtocolError(f"malformed header line {line[:80]!r}")
        name, value = name.strip().lower(), value.strip()
        if name == "content-length":
            if not value.isdigit():
                raise ProtocolError(f"bad Content-Length {value!r}")
            length = int(value)
        elif name == "connection":
            keep = value.lower() != "close" and (keep or value.lower() == "keep-alive")
        elif name == "transfer-encoding":
            raise ProtocolError(f"Transfer-Encoding {value!r} is not supported")
        if name in want:
            headers[name] = value
    if length < 0:
        raise ProtocolError("the response has no Content-Length")
    return int(status_line[1]), length, keep, headers


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # only the ones asked for, lower-case names
    body: bytes


@dataclass
class _Conn:
    sock: socket.socket
    used: bool = False
    buffer: bytearray = field(default_factory=bytearray)


def response_reader(
    buf: bytearray, want: tuple[str, ...]
) -> Generator[int, bytes, tuple[Response, bool]]:
    """Reads one response out of `buf` and the chunks sent in, without doing any I/O itself
    (so the blocking and the asyncio client share it): yields how many bytes to receive next,
    is sent each chunk received (``b""`` at end of stream), and returns the response and
    whether the connection stays open. Bytes past the response stay in `buf`."""
    while (end := buf.find(b"\r\n\r\n")) < 0:
        if len(buf) > MAX_HEADER_BYTES:
            raise ProtocolError(f"response headers over {MAX_HEADER_BYTES} bytes")
        chunk = yield 65536
        if not chunk:
            if not buf:
                raise StaleConnection("the server closed the connection before answering")
            raise ProtocolError("the server closed the connection inside the headers")
        buf += chunk
    status, length, keep, headers = parse_head(bytes(buf[:end]), want)
    del buf[: end + 4]
    while len(buf) < length:
        chunk = yield max(65536, length - len(buf))
        if not chunk:
            raise ProtocolError("the server closed the connection inside the body")
        buf += chunk
    payload = bytes(buf[:length])
    del buf[:length]
    return Response(status, headers, payload), keep


class Endpoint:
    """What both load-generator clients know of their server: ``http://host:port``, the
    timeout of a request, and the response headers to keep (lower-case)."""

    def __init__(
        self, base_url: str, *, timeout_s: float = 5.0, want: tuple[str, ...] = ()
    ) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"base_url must be http://host:port, got {base_url!r}")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
        self.host, self.port = parts.hostname, parts.port or 80
        self.timeout_s = timeout_s
        self.want = tuple(h.lower() for h in want)
        self._host_header = f"{self.host}:{self.port}".encode()


class KeepAliveClient(Endpoint):
    """``post(path, body)`` on this thread's kept-alive connection to ``base_url``.

    A request on a reused connection that the server had closed while idle (uvicorn closes
    after 5 s) fails before the server saw it; it is retried once on a new connection, as
    urllib3 does, and the time of both attempts counts. Any other failure raises.
    """

    def __init__(
        self, base_url: str, *, timeout_s: float = 5.0, want: tuple[str, ...] = ()
    ) -> None:
        super().__init__(base_url, timeout_s=timeout_s, want=want)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []

    def _connect(self) -> _Conn:
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        # One write per request, and no delayed-ACK wait on the response: the classic 40 ms.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._socks.append(sock)
        conn = _Conn(sock)
        self._local.conn = conn
        return conn

    def _drop(self, conn: _Conn) -> None:
        self._local.conn = None
        conn.sock.close()

    def post(self, path: str, body: bytes, content_type: str = "application/json") -> Response:
        conn: _Conn | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
        request = post_request(self._host_header, path, body, content_type)
        reused = conn.used
        try:
            conn.sock.sendall(request)
            response, keep = self._read(conn)
        except (StaleConnection, BrokenPipeError, ConnectionResetError):
            self._drop(conn)
            if reused:
                return self.post(path, body, content_type)
            raise
        except BaseException:
            self._drop(conn)
            raise
        conn.used = True
        if not keep:
            self._drop(conn)
        return response

    def _read(self, conn: _Conn) -> tuple[Response, bool]:
        reader = response_reader(conn.buffer, self.want)
        size = next(reader)
        while True:
            try:
                size = reader.send(conn.sock.recv(size))
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    def close(self) -> None:
        with self._lock:
            socks, self._socks = self._socks, []
        for sock in socks:
            sock.close()
