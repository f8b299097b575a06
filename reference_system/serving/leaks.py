"""What our servers could leave behind: processes, temp dirs, shared-memory regions.

    python -m reference_system.serving.leaks     # exit 1 and list them, if there are any

Ours means: a process whose working directory or command line is inside one of our temp dirs
(``$TMPDIR/pytest-latency-*``: every managed server runs there or names it), a temp dir of
that name, or a ``/dev/shm`` region named ``pytest-latency-*`` (Triton's Python backend).
``.ci/run`` runs it after the test suite; the tests use :func:`group_members`.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from reference_system.serving.leftovers import SHM_DIR, TMP_PREFIX


@dataclass
class Leftovers:
    processes: dict[int, str] = field(default_factory=dict)  # pid -> command line
    tmpdirs: list[Path] = field(default_factory=list)
    shm: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.processes or self.tmpdirs or self.shm)

    def __str__(self) -> str:
        lines = [f"process {pid}: {cmd}" for pid, cmd in sorted(self.processes.items())]
        lines += [f"temp dir: {p}" for p in self.tmpdirs]
        lines += [f"shared memory: {SHM_DIR / n}" for n in self.shm]
        return "\n".join(lines) or "nothing left behind"


def group_members(pgid: int) -> dict[int, str]:
    """Live (not zombie) processes of process group `pgid`: pid -> comm."""
    members = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()  # state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            members[int(entry.name)] = comm
    return members


def find_leftovers(tmp_root: Path | None = None) -> Leftovers:
    root = Path(tmp_root or tempfile.gettempdir())
    marker = str(root / TMP_PREFIX)
    found = Leftovers()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            cwd = ""
            with contextlib.suppress(OSError):
                cwd = os.readlink(entry / "cwd")
            if cwd.startswith(marker) or marker in cmd:
                found.processes[int(entry.name)] = cmd.strip()
    found.tmpdirs = sorted(root.glob(f"{TMP_PREFIX}*"))
    with contextlib.suppress(OSError):
        found.shm = sorted(n for n in os.listdir(SHM_DIR) if n.startswith(TMP_PREFIX))
    return found


def main() -> int:
    found = find_leftovers()
    print(found)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
