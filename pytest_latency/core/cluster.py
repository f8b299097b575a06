"""Locust's master and workers, in subprocesses: gevent's monkey-patching never reaches the
process that runs pytest.

* Local (``workers=N``): the plugin starts a master on 127.0.0.1 and N ``locust --worker``
  processes, and stops them all when the test ends, however it ends: `close` in a
  ``finally``; each child gets ``PR_SET_PDEATHSIG`` (Linux) so the kernel kills it if pytest
  is killed; each runs in a session of its own and is killed with its process group.
* Remote (``master=(host, port)``): the plugin starts only the master, bound there, and waits
  up to ``timeout_s`` for workers that users started elsewhere with ``locust --worker -f
  <pytest_latency.locust_engine's locustfile> --master-host ...``. Closing the master tells
  those workers to quit.

The master speaks JSON lines on stdin/stdout (`pytest_latency.locust_engine.master`).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

_PR_SET_PDEATHSIG = 1
START_TIMEOUT_S = 30.0  # the master binding, and local workers connecting
INSTALL = "pip install 'pytest-latency[locust]'"
# The workers' locustfile (`pytest_latency.locust_engine.LOCUSTFILE`), found by path: that
# package imports the core, and runs only in Locust's processes.
LOCUSTFILE = str(Path(__file__).resolve().parent.parent / "locust_engine" / "locustfile.py")


class LocustError(RuntimeError):
    """The Locust master or its workers could not be started, reached or kept."""


def _child_setup(parent: int) -> Callable[[], None]:
    """Between fork and exec: die with the parent (Linux); ``prctl`` looked up beforehand."""
    prctl = ctypes.CDLL(None).prctl if sys.platform.startswith("linux") else None

    def setup() -> None:
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return setup


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def parse_master(value: str) -> tuple[str, int]:
    """``"HOST:PORT"`` -> ``(host, port)``; a `ValueError` names the bad value."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f"{value!r} is not a valid Locust master address; expected HOST:PORT, e.g. "
            "0.0.0.0:5557 (the address the master binds; workers connect with "
            "--master-host/--master-port)"
        )
    return host.strip("[]"), int(port)


class LocustCluster:
    """A Locust master (and, locally, its workers) in subprocesses."""

    def __init__(
        self,
        workers: int,
        *,
        master: tuple[str, int] | None = None,
        timeout_s: float = 60.0,
        python: str = sys.executable,
    ) -> None:
        self.workers = workers
        self.remote = master is not None
        self.host, self.port = master if master is not None else ("127.0.0.1", 0)
        self.timeout_s = timeout_s if self.remote else START_TIMEOUT_S
        self.python = python
        self.listener: Callable[[dict[str, Any]], None] | None = None
        self.connected = 0
        self._procs: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []
        self._master: subprocess.Popen[bytes] | None = None
        self._ready = threading.Event()
        self._changed = threading.Condition()
        self._send_lock = threading.Lock()

    # -- starting ------------------------------------------------------------------------

    def _spawn(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in `close`
        self._logs.append(log)
        proc = subprocess.Popen(
            argv,
            stderr=log,
            preexec_fn=_child_setup(os.getpid()),
            start_new_session=True,
            **kwargs,
        )
        self._procs.append(proc)
        return proc

    def start(self) -> None:
        """Start the master (and local workers); wait until `workers` are connected. On any
        failure everything started is stopped before the error propagates."""
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        if not self.port:
            self.port = free_port(self.host)
        self._master = self._spawn(
            [
                self.python,
                "-m",
                "pytest_latency.locust_engine.master",
                "--bind",
                self.host,
                "--port",
                str(self.port),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        threading.Thread(target=self._read, name="latency-locust-master", daemon=True).start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise LocustError(f"the Locust master did not start in {START_TIMEOUT_S:g} s")
        if not self.remote:
            for _ in range(self.workers):
                self._spawn(
                    [
                        self.python,
                        "-m",
                        "locust",
                        "-f",
                        LOCUSTFILE,
                        "--worker",
                        "--master-host",
                        "127.0.0.1",
                        "--master-port",
                        str(self.port),
                        "--loglevel",
                        "WARNING",
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                )
        self.wait_for_workers(self.workers)

    def wait_for_workers(self, n: int) -> None:
        deadline = time.monotonic() + self.timeout_s
        with self._changed:
            while self.connected < n:
                self._check_alive()
                left = deadline - time.monotonic()
                if left <= 0:
                    how = (
                        f'start them with: locust --worker -f "$(python -m '
                        f'pytest_latency.locust_engine)" --master-host <this host> '
                        f"--master-port {self.port}"
                        if self.remote
                        else "local workers failed to connect"
                    )
                    raise LocustError(
                        f"{self.connected} of {n} Locust workers connected to the master at "
                        f"{self.host}:{self.port} within {self.timeout_s:g} s; {how}"
                        + self._log_tail()
                    )
                self._changed.wait(min(left, 0.2))

    def _check_alive(self) -> None:
        for proc in self._procs:
            if proc.poll() is not None:
                role = "master" if proc is self._master else "worker"
                raise LocustError(
                    f"the Locust {role} exited with status {proc.returncode}" + self._log_tail()
                )

    def _log_tail(self) -> str:
        tails = []
        for log in self._logs:
            with contextlib.suppress(OSError, ValueError):
                log.seek(0)
                text = log.read().decode(errors="replace").strip()
                if text:
                    tails.append(text[-1500:])
        return ("\n\nLocust's output:\n" + "\n---\n".join(tails)) if tails else ""

    def _read(self) -> None:
        assert self._master is not None and self._master.stdout is not None
        for line in self._master.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            kind = event.get("ev")
            if kind == "ready":
                self._ready.set()
            elif kind == "workers":
                with self._changed:
                    self.connected = int(event["n"])
                    self._changed.notify_all()
            elif self.listener is not None:
                self.listener(event)
        with self._changed:
            self.connected = 0
            self._changed.notify_all()

    # -- talking -------------------------------------------------------------------------

    def send(self, command: dict[str, Any]) -> None:
        master = self._master
        if master is None or master.stdin is None or master.poll() is not None:
            raise LocustError("the Locust master is not running" + self._log_tail())
        with self._send_lock:
            master.stdin.write((json.dumps(command) + "\n").encode())
            master.stdin.flush()

    # -- stopping ------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the master (it tells its workers to quit), then every process started here:
        SIGTERM to its process group, SIGKILL after 2 s. Never raises."""
        master = self._master
        if master is not None and master.poll() is None:
            with contextlib.suppress(OSError, ValueError, LocustError):
                self.send({"cmd": "quit"})
            with contextlib.suppress(subprocess.TimeoutExpired):
                master.wait(3)
        for sig, wait_s in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
            alive = [p for p in self._procs if p.poll() is None]
            for proc in alive:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, sig)
            until = time.monotonic() + wait_s
            for proc in alive:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(max(0.0, until - time.monotonic()))
        for proc in self._procs:
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        for log in self._logs:
            log.close()
        self._procs.clear()
        self._logs.clear()
        self._master = None

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    def alive(self) -> bool:
        return self._master is not None and self._master.poll() is None
