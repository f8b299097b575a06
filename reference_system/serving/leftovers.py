"""What a session leaves behind, and what removes it: locked temp dirs, ``/dev/shm`` regions,
the sweep of dead owners' dirs, and the reaper's body (``reap``), which runs in a process of
its own (started by ``processes``) and cleans up after a session that was killed.

Each temp dir holds an ``flock`` for its owner's lifetime, taken before the lock file gets its
name, so a sweeper never sees it unlocked; the kernel releases it when the owner dies, and a
reused PID cannot fake it. A dir whose lock is held is never removed. docs/serving.md,
"Nothing left behind".
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

TMP_PREFIX = "pytest-latency-"
SHM_DIR = Path("/dev/shm")
LOCK_NAME = ".owner.lock"
SHM_NOTE = "shm-prefix"  # a temp dir's record of its server's shared-memory name prefix
REAP_GRACE_S = 1.0  # how long the reaper lets a dead session's servers die by themselves


def locked_tmpdir(name: str) -> tuple[Path, int]:
    """A new temp dir holding an ``flock`` for as long as the returned fd is open. The lock
    file is locked before it gets its name, so a sweeper never sees it unlocked."""
    path = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{name}-"))
    pending = path / f"{LOCK_NAME}.new"
    fd = os.open(pending, os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.rename(pending, path / LOCK_NAME)
    return path, fd


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
    """The reaper's body (see ``processes``): read ``dir``/``pg`` lines from `fd`
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
    try:
        fd = os.open(path / LOCK_NAME, os.O_RDWR)
    except OSError:
        return False  # not ours, gone, or not locked yet (its owner is still creating it)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # its owner is alive
        with contextlib.suppress(OSError, ValueError):
            remove_shm((path / SHM_NOTE).read_text().strip())
        shutil.rmtree(path, ignore_errors=True)
        return True
    finally:
        os.close(fd)
