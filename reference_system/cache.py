"""Content-addressed artefact cache: one directory per (step, key), written atomically.

A step's key hashes everything its output depends on: the keys of its input artefacts, its own
config and the versions of the libraries that produce it. Re-running a pipeline therefore reuses
every artefact whose inputs did not change and rebuilds exactly the steps downstream of a change.

Layout::

    <cache_dir>/<step>-<key>/meta.json      # written last: its presence marks completion
    <cache_dir>/<step>-<key>/<files...>
    <cache_dir>/.tmp-<step>-<key>-<random>/  # work in progress; renamed into place when done

An interrupted build leaves only a ``.tmp-*`` directory, never a half artefact under its final
name; stale temp directories are swept at the next build.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "CACHE_ENV_VAR",
    "Artefact",
    "ArtefactCache",
    "default_cache_dir",
    "library_versions",
    "log",
]

CACHE_ENV_VAR = "PYTEST_LATENCY_CACHE"
META_FILE = "meta.json"
_STALE_TMP_S = 24 * 3600.0


def default_cache_dir() -> Path:
    """``$PYTEST_LATENCY_CACHE`` or ``<repo>/.cache/reference_system`` (git-ignored)."""
    env = os.environ.get(CACHE_ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parent.parent / ".cache" / "reference_system"


def library_versions(*dists: str) -> dict[str, str]:
    """Installed versions of the named distributions (``"missing"`` when not installed)."""
    out: dict[str, str] = {}
    for dist in dists:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "missing"
    return out


def content_key(
    step: str, config: Mapping[str, Any], inputs: Mapping[str, str], versions: Mapping[str, str]
) -> str:
    """A 16-hex-digit key over a step's name, config, input keys and library versions."""
    payload = json.dumps(
        {"step": step, "config": config, "inputs": inputs, "versions": versions},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Artefact:
    """A completed cache entry."""

    step: str
    key: str
    path: Path
    meta: Mapping[str, Any]

    def file(self, name: str) -> Path:
        return self.path / name


class ArtefactCache:
    """Looks up and atomically creates artefact directories under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def dir_for(self, step: str, key: str) -> Path:
        return self.root / f"{step}-{key}"

    def get(self, step: str, key: str) -> Artefact | None:
        path = self.dir_for(step, key)
        meta_path = path / META_FILE
        if not meta_path.is_file():
            return None
        meta = json.loads(meta_path.read_text())
        return Artefact(step, key, path, meta)

    @contextmanager
    def create(self, step: str, key: str) -> Iterator[Path]:
        """Yield a fresh temp directory; on success it is renamed to its final name.

        The body must write ``meta.json`` last (see :meth:`write_meta`). On any exception the
        temp directory is removed and nothing appears under the final name.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{step}-{key}-{os.getpid()}-", dir=self.root))
        try:
            yield tmp
            if not (tmp / META_FILE).is_file():
                raise RuntimeError(f"step {step!r} finished without writing {META_FILE}")
            final = self.dir_for(step, key)
            tmp.chmod(0o755)  # mkdtemp makes it 0700; the cache may be shared (CI, a team)
            try:
                os.rename(tmp, final)
            except OSError:
                # Another process finished the same artefact first; theirs is equivalent.
                if not (final / META_FILE).is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @staticmethod
    def write_meta(path: Path, meta: Mapping[str, Any]) -> None:
        (path / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))

    def entries(self) -> list[Artefact]:
        """Completed artefacts, oldest first."""
        if not self.root.is_dir():
            return []
        found: list[Artefact] = []
        for path in self.root.iterdir():
            if path.name.startswith(".") or not (path / META_FILE).is_file():
                continue
            meta = json.loads((path / META_FILE).read_text())
            found.append(
                Artefact(str(meta.get("step", "?")), str(meta.get("key", "?")), path, meta)
            )
        return sorted(found, key=lambda a: float(a.meta.get("created_unix", 0.0)))

    def sweep_stale_tmp(self) -> None:
        """Remove ``.tmp-*`` leftovers of killed builds: their process is gone, or a day old."""
        if not self.root.is_dir():
            return
        now = time.time()
        for path in self.root.glob(".tmp-*"):
            pid = path.name.split("-")[-2]
            if not _alive(pid) or now - path.stat().st_mtime > _STALE_TMP_S:
                shutil.rmtree(path, ignore_errors=True)


def _alive(pid: str) -> bool:
    """Whether a process with this id exists on this host (a cache on NFS: assume yes)."""
    if not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_T0 = time.monotonic()


def log(message: str) -> None:
    """Progress on stderr, stamped with seconds since import (stdout stays for results)."""
    print(
        f"[reference_system {time.monotonic() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True
    )
