"""The JSON report (``--latency-json=PATH``): results plus the environment fingerprint."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..core.env import fingerprint
from ..core.result import SCHEMA


def build_report(
    results: Sequence[Mapping[str, Any]],
    settings: Mapping[str, Any],
    cwd: str | os.PathLike[str] | None = None,
    accuracy: Sequence[Mapping[str, Any]] = (),
    comparisons: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "settings": dict(settings),
        "environment": fingerprint(cwd),
        "results": list(results),
        "accuracy": list(accuracy),
        "comparisons": list(comparisons),
    }


def write_report(path: str | os.PathLike[str], report: Mapping[str, Any]) -> Path:
    """Write atomically: a reader never sees half a file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(report, indent=1, default=str) + "\n")
    tmp.replace(target)
    return target


def load_report(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a saved report, refusing files that are not ours or of an unknown schema."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise ValueError(
            f"{path}: schema {found!r} is not {SCHEMA!r}; was it written by pytest --latency-json?"
        )
    return data
