"""Start and stop real server processes: free loopback ports, readiness with a timeout, a
clear error with the server's log tail, and a clean stop that leaves nothing behind.

    with ManagedProcess("redis", [redis_server, "--port", str(port)], ready=port_open(port)) as p:
        ...                                   # p.log_path holds stdout+stderr

Each server runs in its own process group (``start_new_session``), so stopping it also stops
whatever it forked (Triton's Python-backend stubs). Stop: the configured signal (SIGINT for
Triton, SIGTERM otherwise), a grace period, then SIGKILL to the whole group.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

LOOPBACK = "127.0.0.1"


class ServerStartError(RuntimeError):
    """A server did not become ready; the message carries its exit status and log tail."""


def free_port() -> int:
    """A free TCP port on 127.0.0.1, chosen by the OS."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = LOOPBACK) -> Callable[[], bool]:
    """Readiness check: something accepts TCP connections on ``host:port``."""

    def check() -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.2)
            return s.connect_ex((host, port)) == 0

    return check


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


class ManagedProcess:
    """A server subprocess with its own process group, temp dir and log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        ready: Callable[[], bool],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        start_timeout_s: float = 30.0,
        stop_signal: int = signal.SIGTERM,
        stop_timeout_s: float = 10.0,
    ) -> None:
        self.name, self.argv = name, list(argv)
        self._ready, self._env, self._cwd = ready, env, cwd
        self.start_timeout_s, self.stop_signal = start_timeout_s, stop_signal
        self.stop_timeout_s = stop_timeout_s
        self.tmpdir = Path(tempfile.mkdtemp(prefix=f"pytest-latency-{name}-"))
        self.log_path = self.tmpdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        env = {**os.environ, **(self._env or {})}
        log = self.log_path.open("wb")
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self._cwd or self.tmpdir,
                start_new_session=True,
            )
        except OSError as exc:
            log.close()
            self.cleanup()
            raise ServerStartError(f"{self.name}: cannot run {self.argv[0]}: {exc}") from exc
        log.close()
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                status = self.proc.returncode
                text = tail(self.log_path)
                self.stop()
                raise ServerStartError(
                    f"{self.name} exited with status {status} before it was ready.\n"
                    f"command: {' '.join(self.argv)}\nlog tail:\n{text}"
                )
            if self._ready():
                return self
            time.sleep(0.05)
        text = tail(self.log_path)
        self.stop()
        raise ServerStartError(
            f"{self.name} was not ready within {self.start_timeout_s:g} s.\n"
            f"command: {' '.join(self.argv)}\nlog tail:\n{text}"
        )

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def stop(self) -> None:
        """Signal, wait, then kill the whole process group; remove the temp dir."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, self.stop_signal)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=self.stop_timeout_s)
        if proc is not None:
            # Children (e.g. Triton's backend stubs) may outlive the leader: end the group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self.cleanup()

    def cleanup(self) -> None:
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class ServerBase:
    """What every managed server exposes: `process` (its `ManagedProcess`), `pid`, `tmpdir`,
    `log_path`, and use as a context manager. Subclasses define `start()`, `stop()` and
    `process`."""

    @property
    def process(self) -> ManagedProcess:
        raise NotImplementedError

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        return self.process.pid

    @property
    def tmpdir(self) -> Path:
        return self.process.tmpdir

    @property
    def log_path(self) -> Path:
        return self.process.log_path

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
