"""The load generator's asyncio HTTP client: kept-alive HTTP/1.1 connections on one event loop.

The asyncio sibling of :class:`~reference_system.serving.loadgen_http.KeepAliveClient` (same
request bytes, same header parser, raw non-blocking sockets through the loop's ``sock_*``
calls), for clients that run several requests at once and abandon one midway -- the hedging
client. A connection is checked out for one request and returned when its answer has been
read; a request that is cancelled (or fails) closes its connection, since HTTP/1.1 has no other
way to abandon a request: the server sees the client go, and no later request can read the
abandoned answer.
"""

from __future__ import annotations

import asyncio
import socket

from reference_system.serving.loadgen_http import (
    Endpoint,
    Response,
    StaleConnection,
    post_request,
    response_reader,
)


class AsyncKeepAliveClient(Endpoint):
    """``await post(path, body)`` to ``base_url`` on an idle kept-alive connection (or a new
    one), within `timeout_s`. Use it on one event loop at a time; ``close()`` may be called
    from anywhere once no request is running. A request on a reused connection that the server
    had closed while idle is retried once on a new one, as ``KeepAliveClient`` does."""

    def __init__(
        self, base_url: str, *, timeout_s: float = 5.0, want: tuple[str, ...] = ()
    ) -> None:
        super().__init__(base_url, timeout_s=timeout_s, want=want)
        self._idle: list[socket.socket] = []
        self._open: set[socket.socket] = set()
        self.aborted = 0  # requests abandoned midway (cancelled, timed out, failed)

    async def post(
        self, path: str, body: bytes, content_type: str = "application/json"
    ) -> Response:
        request = post_request(self._host_header, path, body, content_type)
        async with asyncio.timeout(self.timeout_s):
            if self._idle:
                try:
                    return await self._exchange(self._idle.pop(), request)
                except StaleConnection:
                    pass  # the server closed it while idle: once more, on a new connection
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._open.add(sock)
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                await asyncio.get_running_loop().sock_connect(sock, (self.host, self.port))
            except BaseException:
                self._close(sock)
                raise
            return await self._exchange(sock, request)

    async def _exchange(self, sock: socket.socket, request: bytes) -> Response:
        loop = asyncio.get_running_loop()
        buf = bytearray()
        try:
            await loop.sock_sendall(sock, request)
            reader = response_reader(buf, self.want)
            size = next(reader)
            while True:
                try:
                    size = reader.send(await loop.sock_recv(sock, size))
                except StopIteration as done:
                    response, keep = done.value
                    break
        except StaleConnection:
            self._close(sock)
            raise
        except BaseException:  # cancelled, timed out or failed: nobody reads this answer
            self._close(sock)
            self.aborted += 1
            raise
        if keep and not buf:
            self._idle.append(sock)
        else:  # closing, or more bytes than the answer: nothing to reuse
            self._close(sock)
        return response  # type: ignore[no-any-return]

    def _close(self, sock: socket.socket) -> None:
        self._open.discard(sock)
        sock.close()

    def close(self) -> None:
        for sock in list(self._open):
            self._close(sock)
        self._idle.clear()
