"""``python -m reference_system info`` shows the cache as a table."""

from __future__ import annotations

from pathlib import Path

import pytest

from reference_system.__main__ import main
from reference_system.build import Artifacts


def test_info_lists_every_cached_step_with_accuracy_and_size(
    artifacts: Artifacts, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["info", "--cache-dir", str(artifacts.cache_dir)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:5] == ["step", "key", "profile", "accuracy", "size_MB"]
    for name, artefact in artifacts.steps.items():
        assert any(line.startswith(name) and artefact.key in line for line in out.splitlines())


def test_info_on_an_empty_cache_says_how_to_build(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["info", "--cache-dir", str(tmp_path)]) == 0
    assert "python -m reference_system build" in capsys.readouterr().out
