"""Start and stop real server processes: free loopback ports, readiness with a timeout, a
clear error with the server's log tail, and a clean stop that leaves nothing behind.

    with ManagedProcess("redis", [redis_server, "--port", str(port)], ready=port_open(port)) as p:
        ...                                   # p.log_path holds stdout+stderr

Each server runs in its own process group (``start_new_session``), so stopping it also stops
whatever it forked (Triton's Python-backend stubs). Stop: the configured signal (SIGINT for
Triton, SIGTERM otherwise), a grace period, then SIGKILL to the whole group.

Nothing outlives the process that started it, however that process ends (docs/serving.md,
"Nothing left behind"):

- killed (SIGKILL, OOM): on Linux each server gets ``PR_SET_PDEATHSIG`` = SIGKILL before it
  executes, so the kernel kills it when its parent dies (the parent *thread*: start servers
  from a thread that lives as long as they do, e.g. the main thread);
- SIGTERM, or the interpreter exiting with servers still running: every live server is
  stopped (a SIGTERM handler, installed only where none was, and ``atexit``);
- interrupted (Ctrl-C) while waiting for readiness, or a failed start: the server is stopped
  before the exception propagates;
- temp dirs and ``/dev/shm`` regions: each temp dir holds a lock (``flock``) for its owner's
  lifetime, from construction (a server built but never started is cleaned up at exit too).
  The first server built in a process starts a small reaper process that holds the read end
  of a pipe only this process writes to; when the pipe reaches end-of-file (this process
  exited or was killed), the reaper kills whatever of this process's servers still runs and
  removes its temp dirs and shared-memory regions, then exits. The first server also removes
  every temp dir whose lock is free (its owner died) with the regions recorded in it. A lock,
  not a PID: the kernel releases it when the owner dies, and a reused PID cannot fake it; a
  dir whose lock is held is never removed.

Ports: a server given ``ports`` is ready only once every one of them is listened on by the
server's own process (``/proc/net/tcp``), never by another session's; a server that could not
bind a port raises ``PortInUse``, and the servers here retry on fresh ports.

This module holds the servers and the session's registry of them; the temp dirs, the sweep
and the reaper's body are in ``leftovers``, the port helpers (``port_open``, ``free_port``,
``bound_socket``, ``listened_by``) in ``ports``.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Self

from reference_system.serving.leftovers import (
    SHM_NOTE,
    locked_tmpdir,
    remove_shm,
    sweep_stale,
)
from reference_system.serving.ports import listened_by

_PR_SET_PDEATHSIG = 1
# What redis-server, uvicorn and tritonserver write when a port is taken.
_BIND_FAILED = re.compile(r"address already in use|already in use|bind: |errno 98", re.I)
START_ATTEMPTS = 3  # fresh ports tried by a server whose port was taken meanwhile


class ServerStartError(RuntimeError):
    """A server did not become ready; the message carries its exit status and log tail."""


class PortInUse(ServerStartError):
    """The server could not bind its port: another process took it after it was chosen."""


# -- nothing left behind ------------------------------------------------------------------

_live: set[ManagedProcess] = set()
# Reentrant: the SIGTERM handler runs in the main thread, which may hold it at that moment.
_live_lock = threading.RLock()
_installed = False
_reaper: subprocess.Popen[bytes] | None = None
_reaper_fd = -1  # the pipe's write end, held by this process alone (close-on-exec)


def stop_all() -> None:
    """Stop every server this process built and has not stopped yet."""
    with _live_lock:
        live = list(_live)
    for process in live:
        with contextlib.suppress(Exception):
            process.stop()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    # A lock-free snapshot: the main thread may be inside a `with _live_lock` right now.
    for process in list(_live):
        with contextlib.suppress(Exception):
            process.stop()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _install_cleanup() -> None:
    """Once per process: ``atexit`` and (from the main thread, where no handler was set) a
    SIGTERM handler that stop every live server; then sweep what dead owners left."""
    global _installed
    if _installed:
        return
    _installed = True
    atexit.register(stop_all)
    if threading.current_thread() is threading.main_thread() and (
        signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    ):
        signal.signal(signal.SIGTERM, _on_sigterm)
    _start_reaper()
    sweep_stale()


def _start_reaper() -> None:
    """The session's reaper: ``reap(fd)`` in a child of its own session (a Ctrl-C or a kill of
    the terminal's process group does not reach it), reading the pipe until end-of-file."""
    global _reaper, _reaper_fd
    read_fd, write_fd = os.pipe()  # both close-on-exec: no server inherits the write end
    root = str(Path(__file__).resolve().parents[2])
    code = (
        f"import sys; sys.path.insert(0, {root!r}); "
        f"from reference_system.serving.leftovers import reap; reap({read_fd})"
    )
    try:
        _reaper = subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd="/",
            start_new_session=True,
            pass_fds=(read_fd,),
        )
    except OSError:
        os.close(write_fd)  # no reaper: the next session's sweep remains
    else:
        _reaper_fd = write_fd
    finally:
        os.close(read_fd)


def _tell_reaper(kind: str, value: object) -> None:
    """One line to the reaper: ``dir PATH`` (a temp dir of ours) or ``pg PGID`` (a server)."""
    if _reaper_fd >= 0:
        with contextlib.suppress(OSError):
            os.write(_reaper_fd, f"{kind} {value}\n".encode())  # < PIPE_BUF: atomic


def _forget_the_session_after_fork() -> None:
    """In a child forked without exec (``os.fork``, multiprocessing's fork start method): it
    is not the session. It must not hold the reaper's pipe open (the reaper would wait for
    it, not for the session), nor stop the session's servers when it exits (``atexit``) or
    gets a SIGTERM (``multiprocessing`` terminates its workers so), nor share the locks that
    say the session's temp dirs are in use (an ``flock`` lasts while any copy of its fd is
    open: the reaper would leave the dirs of a killed session to a child that outlived it). A
    child that builds servers of its own installs its own cleanup and reaper."""
    global _reaper_fd, _reaper, _installed, _live, _live_lock
    for process in list(_live):  # the child's copies: the session's own stay open
        if process._lock_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(process._lock_fd)
            process._lock_fd = -1
    if _reaper_fd >= 0:
        with contextlib.suppress(OSError):
            os.close(_reaper_fd)
    _reaper_fd, _reaper, _installed = -1, None, False
    _live, _live_lock = set(), threading.RLock()  # the parent's lock may have been held


os.register_at_fork(after_in_child=_forget_the_session_after_fork)


def _child_setup(parent: int) -> Callable[[], None]:
    """Runs in the child between fork and exec: die with the parent (Linux). ``prctl`` is
    looked up here, in the parent: the child only calls it (no loader lock after fork)."""
    prctl = ctypes.CDLL(None).prctl if sys.platform.startswith("linux") else None

    def setup() -> None:
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return setup


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
        ports: Sequence[int] = (),
        pass_fds: Sequence[int] = (),
        shm_prefix: str | None = None,
    ) -> None:
        self.name, self.argv = name, list(argv)
        self._ready, self._cwd = ready, cwd
        # argv and env may be completed before start(), e.g. with paths inside `tmpdir`.
        self.env = dict(env or {})
        self.start_timeout_s, self.stop_signal = start_timeout_s, stop_signal
        self.stop_timeout_s = stop_timeout_s
        self.ports, self.pass_fds = tuple(ports), tuple(pass_fds)
        self.shm_prefix = shm_prefix
        _install_cleanup()
        self.tmpdir, self._lock_fd = locked_tmpdir(name)
        self.proc: subprocess.Popen[bytes] | None = None
        # Registered from construction: one built but never started is cleaned up at exit.
        with _live_lock:
            _live.add(self)
        _tell_reaper("dir", self.tmpdir)
        if shm_prefix:
            (self.tmpdir / SHM_NOTE).write_text(shm_prefix)
        self.log_path = self.tmpdir / f"{name}.log"

    def start(self) -> Self:
        env = {**os.environ, **self.env}
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
                pass_fds=self.pass_fds,
                # prctl must run in the child; the setup calls nothing that takes a lock.
                preexec_fn=_child_setup(os.getpid()),
            )
        except OSError as exc:
            log.close()
            self.cleanup()
            raise ServerStartError(f"{self.name}: cannot run {self.argv[0]}: {exc}") from exc
        log.close()
        with _live_lock:
            _live.add(self)
        _tell_reaper("pg", self.proc.pid)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()  # a failed start, or Ctrl-C during the wait: nothing left running
            raise
        return self

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                text = tail(self.log_path)
                error = PortInUse if _BIND_FAILED.search(text) else ServerStartError
                raise error(
                    f"{self.name} exited with status {self.proc.returncode} before it was "
                    f"ready.\ncommand: {' '.join(self.argv)}\nlog tail:\n{text}"
                )
            if self._ready() and all(listened_by(self.proc.pid, p) for p in self.ports):
                return
            time.sleep(0.05)
        raise ServerStartError(
            f"{self.name} was not ready within {self.start_timeout_s:g} s.\n"
            f"command: {' '.join(self.argv)}\nlog tail:\n{tail(self.log_path)}"
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
        with _live_lock:
            _live.discard(self)
        self.cleanup()

    def cleanup(self) -> None:
        """Remove the temp dir and the shared-memory regions (idempotent)."""
        with _live_lock:
            _live.discard(self)
        if self.shm_prefix:
            remove_shm(self.shm_prefix)
        shutil.rmtree(self.tmpdir, ignore_errors=True)
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

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
