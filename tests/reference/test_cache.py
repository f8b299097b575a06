"""The artefact cache: atomic creation, keys, sweeping leftovers (no model needed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reference_system.cache import ArtefactCache, content_key


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


def test_temp_dirs_of_dead_build_processes_are_swept(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    stale = tmp_path / f".tmp-step-abc-{dead}-xyz"
    live = tmp_path / f".tmp-step-abc-{os.getpid()}-xyz"
    stale.mkdir()
    live.mkdir()
    ArtefactCache(tmp_path).sweep_stale_tmp()
    assert not stale.exists()
    assert live.exists()


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
