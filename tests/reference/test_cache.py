"""The artefact cache: atomic creation, keys, sweeping leftovers (no model needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reference_system.cache import ArtefactCache, CacheCorruptionWarning, content_key


def test_a_completed_artefact_appears_under_its_final_name_with_meta(tmp_path: Path) -> None:
    cache = ArtefactCache(tmp_path)
    with cache.create("step", "abc") as tmp:
        (tmp / "model.bin").write_bytes(b"x")
        cache.write_meta(tmp, {"step": "step", "key": "abc"})
    hit = cache.get("step", "abc")
    assert hit is not None
    assert hit.file("model.bin").read_bytes() == b"x"
    assert [p.name for p in tmp_path.iterdir()] == ["step-abc"]


def test_an_interrupted_step_leaves_neither_artefact_nor_temp_dir(tmp_path: Path) -> None:
    cache = ArtefactCache(tmp_path)

    def interrupted_step() -> None:
        with cache.create("step", "abc") as tmp:
            (tmp / "model.bin").write_bytes(b"half")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted_step()
    assert cache.get("step", "abc") is None
    assert list(tmp_path.iterdir()) == []


def test_a_step_that_forgets_its_meta_is_not_published(tmp_path: Path) -> None:
    cache = ArtefactCache(tmp_path)
    with (
        pytest.raises(RuntimeError, match=r"without writing meta\.json"),
        cache.create("step", "abc") as tmp,
    ):
        (tmp / "model.bin").write_bytes(b"x")
    assert cache.get("step", "abc") is None


def _dead_pid() -> str:
    return subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_unlocked_temp_dirs_of_dead_build_processes_are_swept_after_a_minute(
    tmp_path: Path,
) -> None:
    """Temp dirs without a lock file (left by a version without locks): the PID rule, once
    they are over a minute old."""
    dead = _dead_pid()
    stale = tmp_path / f".tmp-step-abc-{dead}-xyz"
    fresh = tmp_path / f".tmp-step-abd-{dead}-xyz"
    live = tmp_path / f".tmp-step-abc-{os.getpid()}-xyz"
    for path in (stale, fresh, live):
        path.mkdir()
    _age(stale, 120)
    _age(live, 120)
    ArtefactCache(tmp_path).sweep_stale_tmp()
    assert not stale.exists()
    assert fresh.exists()  # between mkdtemp and its lock, as far as the sweep can tell
    assert live.exists()


# A build in another process that says, through its temp dir's name, that it is a PID that
# does not exist here: what a build in another container or on another machine sharing the
# cache folder looks like.
_FOREIGN_BUILD = """
import os, sys
from pathlib import Path
from reference_system.cache import ArtefactCache
os.getpid = lambda: int(sys.argv[2])
with ArtefactCache(Path(sys.argv[1])).create("step", "abc") as tmp:
    (tmp / "model.bin").write_bytes(b"half")
    print(tmp, flush=True)
    sys.stdin.readline()
"""


def test_a_live_builds_temp_dir_survives_the_sweep_whatever_its_pid_and_age(
    tmp_path: Path,
) -> None:
    cache = ArtefactCache(tmp_path)
    child = subprocess.Popen(
        [sys.executable, "-c", _FOREIGN_BUILD, str(tmp_path), _dead_pid()],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        tmp = Path(child.stdout.readline().strip())
        assert tmp.name.startswith(".tmp-step-abc-")
        _age(tmp, 2 * 24 * 3600)
        cache.sweep_stale_tmp()
        assert (tmp / "model.bin").read_bytes() == b"half"  # its lock is held: not touched
        child.kill()  # SIGKILL: no clean-up ran, the kernel released the lock
        child.wait(timeout=10)
        assert tmp.exists()
        cache.sweep_stale_tmp()
        assert not tmp.exists()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)


def _make(cache: ArtefactCache, calls: list[str]) -> tuple[Path, bool]:
    def produce(out: Path) -> dict[str, Any]:
        calls.append("built")
        (out / "model.bin").write_bytes(b"weights" * 100)
        (out / "sub").mkdir()
        (out / "sub" / "vocab.txt").write_text("a\nb\n")
        return {"metrics": {"accuracy": 0.9}}

    artefact, made = cache.get_or_create("step", "abc", produce)
    assert artefact.meta["metrics"] == {"accuracy": 0.9}
    return artefact.path, made


def test_get_or_create_builds_once_and_records_every_files_size(tmp_path: Path) -> None:
    cache, calls = ArtefactCache(tmp_path), []
    path, made = _make(cache, calls)
    assert made
    assert _make(cache, calls) == (path, False)
    assert calls == ["built"]
    meta = json.loads((path / "meta.json").read_text())
    assert meta["files"] == {"model.bin": 700, "sub/vocab.txt": 4}
    assert meta["step"] == "step"
    assert meta["key"] == "abc"
    assert not (path / ".lock").exists()


def _truncate_meta(path: Path) -> None:
    text = (path / "meta.json").read_text()
    (path / "meta.json").write_text(text[: len(text) // 2])


@pytest.mark.parametrize(
    ("corrupt", "problem"),
    [
        (_truncate_meta, r"meta\.json is not JSON"),
        (lambda p: (p / "meta.json").write_text("[1, 2]"), r"meta\.json is not a JSON object"),
        (lambda p: (p / "meta.json").unlink(), r"no meta\.json"),
        (lambda p: (p / "model.bin").write_bytes(b"wei"), r"model\.bin is 3 bytes, 700 recorded"),
        (lambda p: (p / "sub" / "vocab.txt").unlink(), r"sub/vocab\.txt is missing"),
        (
            lambda p: (p / "model.bin").write_bytes(b"weights" * 101),
            r"model\.bin is 707 bytes, 700 recorded",
        ),
    ],
    ids=[
        "truncated-meta",
        "meta-not-an-object",
        "meta-missing",
        "truncated-file",
        "missing-file",
        "grown-file",
    ],
)
def test_a_corrupt_entry_is_rebuilt_with_a_warning_naming_the_problem(
    tmp_path: Path, corrupt: Callable[[Path], object], problem: str
) -> None:
    cache, calls = ArtefactCache(tmp_path), []
    path, _ = _make(cache, calls)
    corrupt(path)
    with pytest.warns(CacheCorruptionWarning, match=rf"step-abc is unusable \({problem}"):
        again, made = _make(cache, calls)
    assert made
    assert calls == ["built", "built"]
    assert (again / "model.bin").read_bytes() == b"weights" * 100
    assert _make(cache, calls) == (again, False)  # healthy again: no warning, no rebuild
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-abc"]  # nothing left aside


def test_listing_skips_an_unreadable_entry_with_a_warning(tmp_path: Path) -> None:
    cache = ArtefactCache(tmp_path)
    path, _ = _make(cache, [])
    _truncate_meta(path)
    with pytest.warns(CacheCorruptionWarning, match=r"step-abc is unusable"):
        assert cache.entries() == []


def test_keys_change_with_config_inputs_and_versions() -> None:
    base = content_key("s", {"a": 1}, {"up": "k"}, {"lib": "1.0"})
    assert base == content_key("s", {"a": 1}, {"up": "k"}, {"lib": "1.0"})
    assert base != content_key("s", {"a": 2}, {"up": "k"}, {"lib": "1.0"})
    assert base != content_key("s", {"a": 1}, {"up": "k2"}, {"lib": "1.0"})
    assert base != content_key("s", {"a": 1}, {"up": "k"}, {"lib": "1.1"})
    assert base != content_key("t", {"a": 1}, {"up": "k"}, {"lib": "1.0"})


def test_importing_the_package_and_its_pipeline_loads_no_heavy_library() -> None:
    code = (
        "import sys, reference_system, reference_system.build, reference_system.tensorrt, "
        "reference_system.__main__; "
        "print(sorted(m for m in ('torch', 'onnxruntime', 'transformers', 'onnx') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[]"
