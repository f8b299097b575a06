"""Content-addressed artefact cache: one directory per (step, key), written atomically.

A step's key hashes everything its output depends on: the keys of its input artefacts, its own
config and the versions of the libraries that produce it. Re-running a pipeline therefore reuses
every artefact whose inputs did not change and rebuilds exactly the steps downstream of a change.

Layout::

    <cache_dir>/<step>-<key>/meta.json      # written last: its presence marks completion
    <cache_dir>/<step>-<key>/<files...>
    <cache_dir>/.tmp-<step>-<key>-<random>/  # work in progress; renamed into place when done

An interrupted build leaves only a ``.tmp-*`` directory, never a half artefact under its final
name; stale temp directories are swept at the next build. A build holds an exclusive
``flock`` on ``.tmp-*/.lock`` while it works, and the sweep removes only directories whose
lock it can take: the kernel drops a lock when its holder dies (SIGKILL and OOM included), so a
live build's files survive whatever host or container it runs on, where a PID would not say.

``meta.json`` records every file's size (``files``); an entry whose meta is unreadable or
whose files do not match is removed with a :class:`CacheCorruptionWarning`, and the step that
made it is rebuilt (:meth:`ArtefactCache.get` answers None).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "CACHE_ENV_VAR",
    "Artefact",
    "ArtefactCache",
    "CacheCorruptionWarning",
    "default_cache_dir",
    "library_versions",
    "log",
]

CACHE_ENV_VAR = "PYTEST_LATENCY_CACHE"
META_FILE = "meta.json"
LOCK_FILE = ".lock"
_STALE_TMP_S = 24 * 3600.0
# A temp dir without a lock file is younger than this between mkdtemp and taking the lock, or
# was left by a version of this code without locks.
_UNLOCKED_GRACE_S = 60.0


class CacheCorruptionWarning(UserWarning):
    """A cache entry was unreadable or did not match its record; it is rebuilt."""


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
        """The completed entry, or None when there is none or it is unusable: a ``meta.json``
        that is missing, truncated or not an object, or a file whose size differs from the
        one recorded. An unusable entry is removed (with a :class:`CacheCorruptionWarning`),
        so the caller builds it again."""
        path = self.dir_for(step, key)
        if not path.is_dir():
            return None
        meta, problem = _read_meta(path)
        if meta is None:
            self._discard(path, problem)
            return None
        mismatch = _files_problem(path, meta)
        if mismatch is not None:
            self._discard(path, mismatch)
            return None
        return Artefact(step, key, path, meta)

    def _discard(self, path: Path, problem: str) -> None:
        warnings.warn(
            f"artefact cache: {path.name} is unusable ({problem}); it is removed and the step "
            "rebuilt",
            CacheCorruptionWarning,
            stacklevel=3,
        )
        log(f"{path.name}: unusable ({problem}); rebuilding it")
        # Renamed out of the way first (atomic): a concurrent build never finds half of it.
        aside = self.root / f".tmp-corrupt-{path.name}-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            os.rename(path, aside)
        except OSError:
            return  # someone else removed or replaced it first
        shutil.rmtree(aside, ignore_errors=True)

    def get_or_create(
        self, step: str, key: str, produce: Callable[[Path], Mapping[str, Any]]
    ) -> tuple[Artefact, bool]:
        """The entry for (`step`, `key`), and whether it was made now: when there is no usable
        one, ``produce(tmp_dir)`` writes the files into ``tmp_dir`` and returns the rest of
        the meta to record (``step``, ``key`` and ``files`` are added).

        Example::

            def train(out: Path) -> dict[str, Any]:
                (out / "model.bin").write_bytes(fit())
                return {"metrics": {"accuracy": 0.84}}

            artefact, built = cache.get_or_create("finetune", key, train)
        """
        hit = self.get(step, key)
        if hit is not None:
            return hit, False
        with self.create(step, key) as tmp:
            meta = produce(tmp)
            self.write_meta(tmp, {**meta, "step": step, "key": key})
        made = self.get(step, key)
        if made is None:  # only if something removed it at once: say so rather than loop
            raise RuntimeError(f"{self.dir_for(step, key)} vanished right after it was built")
        return made, True

    @contextmanager
    def create(self, step: str, key: str) -> Iterator[Path]:
        """Yield a fresh temp directory; on success it is renamed to its final name.

        The body must write ``meta.json`` last (see :meth:`write_meta`). On any exception the
        temp directory is removed and nothing appears under the final name.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{step}-{key}-{os.getpid()}-", dir=self.root))
        lock = _hold_lock(tmp / LOCK_FILE)
        try:
            yield tmp
            if not (tmp / META_FILE).is_file():
                raise RuntimeError(f"step {step!r} finished without writing {META_FILE}")
            final = self.dir_for(step, key)
            tmp.chmod(0o755)  # mkdtemp makes it 0700; the cache may be shared (CI, a team)
            (tmp / LOCK_FILE).unlink()  # still held (the open file) until the rename is done
            try:
                os.rename(tmp, final)
            except OSError:
                # Another process finished the same artefact first; theirs is equivalent.
                if not (final / META_FILE).is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            os.close(lock)

    @staticmethod
    def write_meta(path: Path, meta: Mapping[str, Any]) -> None:
        """Write ``meta.json`` (last), with ``files``: every file's size, checked on load."""
        files = {
            str(p.relative_to(path)): p.stat().st_size
            for p in sorted(path.rglob("*"))
            if p.is_file() and p.name not in (META_FILE, LOCK_FILE)
        }
        record = {**meta, "files": files}
        (path / META_FILE).write_text(json.dumps(record, indent=2, sort_keys=True, default=str))

    def entries(self) -> list[Artefact]:
        """Completed artefacts, oldest first."""
        if not self.root.is_dir():
            return []
        found: list[Artefact] = []
        for path in self.root.iterdir():
            if path.name.startswith(".") or not (path / META_FILE).is_file():
                continue
            meta, problem = _read_meta(path)
            if meta is None:
                warnings.warn(
                    f"artefact cache: {path.name} is unusable ({problem}); the next build "
                    "rebuilds it",
                    CacheCorruptionWarning,
                    stacklevel=2,
                )
                continue
            found.append(
                Artefact(str(meta.get("step", "?")), str(meta.get("key", "?")), path, meta)
            )
        return sorted(found, key=lambda a: float(a.meta.get("created_unix", 0.0)))

    def sweep_stale_tmp(self) -> None:
        """Remove ``.tmp-*`` leftovers of killed builds: those whose lock nobody holds.

        A directory without a lock file (one that an older version of this code left) goes
        when it is over a minute old and its process is gone from this host, or a day old."""
        if not self.root.is_dir():
            return
        now = time.time()
        for path in self.root.glob(".tmp-*"):
            try:
                lock = os.open(path / LOCK_FILE, os.O_RDWR)
            except FileNotFoundError:
                try:
                    age_s = now - path.stat().st_mtime
                except FileNotFoundError:
                    continue  # renamed into place or swept meanwhile
                pid = path.name.split("-")[-2]
                if age_s > _UNLOCKED_GRACE_S and (not _alive(pid) or age_s > _STALE_TMP_S):
                    shutil.rmtree(path, ignore_errors=True)
                continue
            except OSError:
                continue
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live build holds it
            else:
                shutil.rmtree(path, ignore_errors=True)
            finally:
                os.close(lock)


def _hold_lock(path: Path) -> int:
    """Create `path` and take an exclusive flock on it; the caller closes the fd to release."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_meta(path: Path) -> tuple[dict[str, Any] | None, str]:
    """``meta.json`` of an entry, or None and what is wrong with it."""
    try:
        text = (path / META_FILE).read_text()
    except FileNotFoundError:
        return None, f"no {META_FILE}"
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"{META_FILE} unreadable: {exc}"
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"{META_FILE} is not JSON ({exc.msg} at char {exc.pos} of {len(text)})"
    if not isinstance(meta, dict):
        return None, f"{META_FILE} is not a JSON object"
    return meta, ""


def _files_problem(path: Path, meta: Mapping[str, Any]) -> str | None:
    """The first recorded file that is missing or not the recorded size, if any. (An entry
    from before sizes were recorded has no ``files`` and is taken as it is.)"""
    files = meta.get("files", {})
    if not isinstance(files, dict):
        return f"{META_FILE}'s files record is not an object"
    for name, size in files.items():
        try:
            actual = (path / name).stat().st_size
        except OSError:
            return f"{name} is missing"
        if actual != size:
            return f"{name} is {actual} bytes, {size} recorded"
    return None


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
