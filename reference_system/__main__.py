"""``python -m reference_system build|info``: build the model artefacts or list the cache.

Examples::

    python -m reference_system build --profile quick
    python -m reference_system build --profile full --cache-dir /tmp/rs-cache
    python -m reference_system info
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from reference_system.cache import CACHE_ENV_VAR, ArtefactCache, default_cache_dir

_COLUMNS = ("step", "key", "profile", "accuracy", "size_MB", "max_diff", "agree", "seconds")


def _row(meta: dict[str, object]) -> tuple[str, ...]:
    metrics = meta.get("metrics")
    m = metrics if isinstance(metrics, dict) else {}
    vs = m.get("vs_reference") if isinstance(m.get("vs_reference"), dict) else {}
    assert isinstance(vs, dict)
    size = m.get("size_bytes")
    acc = m.get("accuracy")
    diff = vs.get("max_abs_logit_diff")
    agree = vs.get("label_agreement")
    return (
        str(meta.get("step", "?")),
        str(meta.get("key", "?")),
        str(meta.get("profile", "?")),
        f"{acc:.4f}" if isinstance(acc, float) else "-",
        f"{size / 1e6:.1f}" if isinstance(size, int) else "-",
        f"{diff:.2e}" if isinstance(diff, float) else "-",
        f"{agree:.2%}" if isinstance(agree, float) else "-",
        str(meta.get("seconds", "-")),
    )


def info(cache_dir: Path) -> int:
    entries = ArtefactCache(cache_dir).entries()
    if not entries:
        print(f"no artefacts in {cache_dir}; run: python -m reference_system build")
        return 0
    rows = [_COLUMNS, *(_row(dict(a.meta)) for a in entries)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    print(
        f"\ncache: {cache_dir}\naccuracy: test split; max_diff/agree: logits vs the "
        "reference (PyTorch for export, ONNX FP32 otherwise); seconds: build time"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reference_system",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build (or reuse) every model artefact of a profile")
    b.add_argument("--profile", choices=("quick", "full"), default="quick")
    i = sub.add_parser("info", help="print the cached artefacts' metadata as a table")
    for p in (b, i):
        p.add_argument(
            "--cache-dir",
            type=Path,
            default=None,
            help=f"default: ${CACHE_ENV_VAR} or <repo>/.cache/reference_system",
        )
    args = parser.parse_args(argv)
    cache_dir: Path = args.cache_dir or default_cache_dir()
    if args.command == "info":
        return info(cache_dir)
    from reference_system.build import build

    artifacts = build(args.profile, cache_dir=cache_dir)
    for name, artefact in artifacts.steps.items():
        print(f"{name:17} {artefact.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
