"""Loopback ports for the servers: a free one, one bound and handed over (``pass_fds``), a
readiness check, and whether a port is listened on by a given process tree (``/proc``), so a
server is never taken for ready on another session's listener."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

LOOPBACK = "127.0.0.1"


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
