"""An import inside a function says why it is there: it keeps ``pytest --help`` light (numpy,
matplotlib), loads an optional dependency, or avoids a cycle. The reason is a comment on the
import's line or the line above it; a run of imports one after the other shares the comment
above the first."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "pytest_latency"
Import = ast.Import | ast.ImportFrom


def _bodies(tree: ast.AST) -> list[list[ast.stmt]]:
    """Every statement list inside a function (its body, and those of ifs, loops, withs...)."""
    bodies = []
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(function):
                for field in ("body", "orelse", "finalbody", "handlers"):
                    block = getattr(node, field, None)
                    if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
                        bodies.append(block)
    return bodies


def _unexplained(path: Path, root: Path = PACKAGE.parent) -> list[str]:
    lines = path.read_text().splitlines()
    bad = set()
    for body in _bodies(ast.parse("\n".join(lines), str(path))):
        explained = False
        previous: ast.stmt | None = None
        for stmt in body:
            if isinstance(stmt, Import):
                follows = isinstance(previous, Import) and not any(
                    lines[i].strip() for i in range(previous.end_lineno or 0, stmt.lineno - 1)
                )
                above = lines[stmt.lineno - 2].strip() if stmt.lineno > 1 else ""
                explained = (
                    "#" in lines[stmt.lineno - 1]
                    or above.startswith("#")
                    or (follows and explained)
                )
                if not explained:
                    bad.add(f"{path.relative_to(root)}:{stmt.lineno}")
            previous = stmt
    return sorted(bad)


def test_every_import_inside_a_function_says_why() -> None:
    bad = [site for path in sorted(PACKAGE.rglob("*.py")) for site in _unexplained(path)]
    assert not bad, (
        "imports inside functions with no comment saying why (keeps `pytest --help` light / "
        f"optional dependency / avoids a cycle); move them to the top or say why: {bad}"
    )


def test_the_walk_finds_the_lazy_imports() -> None:
    """Guards the walk: it finds the package's lazy imports."""
    found = [
        stmt
        for path in PACKAGE.rglob("*.py")
        for body in _bodies(ast.parse(path.read_text()))
        for stmt in body
        if isinstance(stmt, Import)
    ]
    assert len(found) >= 10


def test_an_import_with_no_reason_is_caught(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "def f():\n"
        "    # numpy: keeps `pytest --help` light\n"
        "    import numpy\n"
        "    import math\n"
        "\n"
        "    import json\n"
        "    x = 1\n"
        "    import re\n"
        "    return numpy, math, json, re, x\n"
    )
    assert _unexplained(module, tmp_path) == ["m.py:8"]
