"""Environment fingerprint saved with every JSON report, so a run can be compared fairly.

Cheap reads only (``/proc``, ``/sys``, package metadata, one ``git`` call); nothing is imported.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

KEY_PACKAGES = (
    "pytest",
    "pytest-latency",
    "numpy",
    "pytest-xdist",
    "torch",
    "onnxruntime",
    "onnxruntime-gpu",
    "transformers",
    "tokenizers",
    "tritonclient",
    "redis",
)


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def cpu_model() -> str:
    text = _read("/proc/cpuinfo") or ""
    for line in text.splitlines():
        if line.lower().startswith(("model name", "hardware", "cpu model")):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def package_versions(names: tuple[str, ...] = KEY_PACKAGES) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_info(cwd: str | os.PathLike[str] | None = None) -> dict[str, Any] | None:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(dirty)}


def fingerprint(cwd: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Machine, interpreter, key packages and source revision."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        affinity = os.cpu_count() or 0
    try:
        load = list(os.getloadavg())
    except OSError:
        load = None
    clock = time.get_clock_info("perf_counter")
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "loadavg": load,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "timer": {
            "name": "time.perf_counter_ns",
            "resolution_s": clock.resolution,
            "monotonic": clock.monotonic,
        },
        "packages": package_versions(),
        "git": git_info(cwd),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
