"""The load generator's raw-socket HTTP client against a real (stdlib) HTTP/1.1 server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from reference_system.serving.loadgen_http import KeepAliveClient, ProtocolError


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections: ClassVar[set[int]] = set()

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Handler.connections.add(id(self.connection))
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"0\r\n\r\n")
            return
        self.send_response(201 if self.path == "/created" else 200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Server-Timing", "cache;dur=0.5")
        if self.path == "/close":
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        if self.path == "/drop":  # closes after answering without saying so: an idle timeout
            self.close_connection = True


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_posts_reuse_one_connection_and_return_status_body_and_asked_headers(server: str) -> None:
    Handler.connections.clear()
    client = KeepAliveClient(server, want=("server-timing",))
    try:
        answers = [client.post("/echo", f'{{"i": {i}}}'.encode()) for i in range(5)]
        created = client.post("/created", b"{}")
    finally:
        client.close()
    assert [a.body for a in answers] == [f'{{"i": {i}}}'.encode() for i in range(5)]
    assert {a.status for a in answers} == {200}
    assert created.status == 201
    assert answers[0].headers == {"server-timing": "cache;dur=0.5"}  # only what was asked
    assert len(Handler.connections) == 1


def test_a_connection_closed_while_idle_is_retried_once_and_close_is_honoured(
    server: str,
) -> None:
    client = KeepAliveClient(server)
    try:
        assert client.post("/drop", b"a").body == b"a"
        assert client.post("/echo", b"b").body == b"b"  # retried on a new connection
        assert client.post("/close", b"c").body == b"c"
        assert client.post("/echo", b"d").body == b"d"  # a new connection, no retry needed
    finally:
        client.close()


def test_what_it_cannot_read_raises_and_bad_arguments_are_named(server: str) -> None:
    client = KeepAliveClient(server)
    try:
        with pytest.raises(ProtocolError, match="Transfer-Encoding 'chunked'"):
            client.post("/chunked", b"x")
        assert client.post("/echo", b"after").body == b"after"  # the client still works
    finally:
        client.close()
    with pytest.raises(ValueError, match=r"http://host:port, got 'https://x'"):
        KeepAliveClient("https://x")
    with pytest.raises(ValueError, match="timeout_s must be > 0, got 0"):
        KeepAliveClient(server, timeout_s=0)
