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
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Self

LOOPBACK = "127.0.0.1"
TMP_PREFIX = "pytest-latency-"
SHM_DIR = Path("/dev/shm")
_LOCK_NAME = ".owner.lock"
_SHM_NOTE = "shm-prefix"
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
REAP_GRACE_S = 1.0  # how long the reaper lets a dead session's servers die by themselves


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
        f"from reference_system.serving.processes import reap; reap({read_fd})"
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


def _our_processes(groups: set[int], dirs: list[str]) -> list[int]:
    """Live processes of `groups` whose working dir or command line is in one of `dirs` (so a
    reused process-group id never makes someone else's process ours)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()  # state ppid pgrp ...
            if fields[0] == "Z" or int(fields[2]) not in groups:
                continue
            cwd = ""
            with contextlib.suppress(OSError):
                cwd = os.readlink(entry / "cwd")
            cmd = (entry / "cmdline").read_bytes().decode(errors="replace")
            if any(cwd.startswith(d) or d in cmd for d in dirs):
                found.append(int(entry.name))
    return found


def reap(fd: int) -> None:
    """The reaper's body (see the module docstring): read ``dir``/``pg`` lines from `fd`
    until end-of-file, then give the session's servers `REAP_GRACE_S` to die (they got
    ``PR_SET_PDEATHSIG``), SIGKILL those still running, and remove the session's temp dirs
    whose lock is free, with their shared-memory regions."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    dirs: list[str] = []
    groups: set[int] = set()
    with os.fdopen(fd, "rb") as pipe:
        for line in pipe:
            kind, _, value = line.decode(errors="replace").strip().partition(" ")
            if kind == "dir" and value:
                dirs.append(value)
            elif kind == "pg" and value.isdigit():
                groups.add(int(value))
    # End-of-file: every holder of the write end (the session) has exited.
    deadline = time.monotonic() + REAP_GRACE_S
    while (left := _our_processes(groups, dirs)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while _our_processes(groups, dirs) and time.monotonic() < deadline:
        time.sleep(0.05)
    for path in dirs:
        _remove_if_unowned(Path(path))


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


def _locked_tmpdir(name: str) -> tuple[Path, int]:
    """A new temp dir holding an ``flock`` for as long as the returned fd is open. The lock
    file is locked before it gets its name, so a sweeper never sees it unlocked."""
    import fcntl

    path = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{name}-"))
    pending = path / f"{_LOCK_NAME}.new"
    fd = os.open(pending, os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.rename(pending, path / _LOCK_NAME)
    return path, fd


def remove_shm(prefix: str) -> list[str]:
    """Remove the ``/dev/shm`` regions whose names start with `prefix`; their names."""
    if not prefix or "/" in prefix:
        raise ValueError(f"shm prefix must be a non-empty file-name prefix, got {prefix!r}")
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for entry in SHM_DIR.iterdir():
            if entry.name.startswith(prefix):
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
                    removed.append(entry.name)
    return removed


def sweep_stale(root: Path | None = None) -> list[Path]:
    """Remove our temp dirs under `root` (the temp dir) whose owner is gone (their lock is
    free), with the shared-memory regions they recorded. Returns the dirs removed."""

    return [
        path
        for path in Path(root or tempfile.gettempdir()).glob(f"{TMP_PREFIX}*")
        if _remove_if_unowned(path)
    ]


def _remove_if_unowned(path: Path) -> bool:
    """Remove temp dir `path` and its recorded shared-memory regions if its lock is free (its
    owner is gone); True if removed."""
    import fcntl

    try:
        fd = os.open(path / _LOCK_NAME, os.O_RDWR)
    except OSError:
        return False  # not ours, gone, or not locked yet (its owner is still creating it)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # its owner is alive
        with contextlib.suppress(OSError, ValueError):
            remove_shm((path / _SHM_NOTE).read_text().strip())
        shutil.rmtree(path, ignore_errors=True)
        return True
    finally:
        os.close(fd)


# -- ports --------------------------------------------------------------------------------


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                    inodes.add(inode)
    return inodes


def _tree(pid: int) -> Iterator[int]:
    """`pid` and its descendants (``/proc/PID/task/*/children``)."""
    todo = [pid]
    while todo:
        p = todo.pop()
        yield p
        for children in Path(f"/proc/{p}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo.extend(int(c) for c in children.read_text().split())


def listened_by(pid: int, port: int) -> bool:
    """True when `port` on this host is listened on by `pid` or one of its descendants.
    Where ``/proc`` is not Linux's, it cannot tell and answers True."""
    if not Path("/proc/net/tcp").exists():
        return True
    inodes = _listening_inodes(port)
    if not inodes:
        return False
    wanted = {f"socket:[{i}]" for i in inodes}
    for p in _tree(pid):
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{p}/fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in wanted:
                        return True
    return False


def bound_socket() -> socket.socket:
    """A TCP socket bound to a free port on 127.0.0.1 and listening, to hand to a server
    (``pass_fds``): the port is ours from the start, so nothing can take it meanwhile."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOOPBACK, 0))
        sock.listen(2048)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


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
        self.tmpdir, self._lock_fd = _locked_tmpdir(name)
        self.proc: subprocess.Popen[bytes] | None = None
        # Registered from construction: one built but never started is cleaned up at exit.
        with _live_lock:
            _live.add(self)
        _tell_reaper("dir", self.tmpdir)
        if shm_prefix:
            (self.tmpdir / _SHM_NOTE).write_text(shm_prefix)
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
