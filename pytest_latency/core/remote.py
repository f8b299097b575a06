"""What Locust workers issue: an HTTP request spec or an importable callable, validated here
(in the pytest process, before any process starts) and sent to the workers as plain data.

    >>> http_target("POST", "http://127.0.0.1:8000/predict", json={"texts": ["ok"]})["kind"]
    'http'
    >>> callable_target("mypkg.client:predict")["path"]
    'mypkg.client:predict'

Every error is a `TargetError` (a `ValueError`) naming the bad value and what would be valid.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


class TargetError(ValueError):
    """A request spec or callable path the Locust workers could not run."""


def import_path(value: str | Callable[..., Any], what: str) -> str:
    """``"package.module:function"`` from a string or a module-level function."""
    if callable(value) and not isinstance(value, str):
        module, qualname = getattr(value, "__module__", None), getattr(value, "__qualname__", "")
        if not module or "<" in qualname or module == "__main__":
            raise TargetError(
                f"{what}={value!r} cannot be imported by a Locust worker (a lambda, a local "
                "function or one defined in __main__); pass a module-level function or its "
                "path as 'package.module:function'"
            )
        return f"{module}:{qualname}"
    if not isinstance(value, str) or not _PATH.match(value):
        raise TargetError(
            f"{what}={value!r} is not valid; expected 'package.module:function' (an importable "
            "module, a colon, then the function), e.g. 'myclient.grpc:predict'"
        )
    return value


def _json_able(value: Any, what: str) -> None:
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise TargetError(
            f"{what}={value!r} cannot be sent to Locust workers ({exc}); use JSON values"
        ) from None


def http_target(
    method: str,
    url: str,
    *,
    json: Any = None,
    body: str | bytes | None = None,
    headers: Mapping[str, str] | None = None,
    payloads: Sequence[Mapping[str, Any]] | str | Callable[[int], Any] | None = None,
) -> dict[str, Any]:
    """An HTTP request for the workers. `payloads` varies it per arrival: a list of
    ``{"json": ..., "body": ..., "headers": ...}`` dicts (arrival ``i`` sends item
    ``i % len``), or an importable function ``f(i) -> such a dict``."""
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise TargetError(f"method={method!r} is not valid; expected one of {', '.join(METHODS)}")
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetError(
            f"url={url!r} is not valid; expected an absolute http:// or https:// URL with a "
            "host, e.g. 'http://127.0.0.1:8000/predict'"
        )
    if json is not None and body is not None:
        raise TargetError("json= and body= are both given; choose one")
    if isinstance(body, bytes):
        body = body.decode("latin-1")
    target: dict[str, Any] = {
        "kind": "http",
        "method": method.upper(),
        "url": url,
        "headers": dict(headers or {}),
        "payload": {"json": json, "body": body},
    }
    if payloads is not None:
        if isinstance(payloads, str) or callable(payloads):
            target["payload_fn"] = import_path(payloads, "payloads")
        else:
            items = list(payloads)
            if not items or not all(isinstance(p, Mapping) for p in items):
                raise TargetError(
                    f"payloads={payloads!r} is not valid; expected a non-empty list of dicts "
                    "like {'json': ...} or {'body': ...}, or 'package.module:function'"
                )
            target["payloads"] = [dict(p) for p in items]
    _json_able(target, "the request")
    return target


def callable_target(path: str | Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """A Python callable for the workers, by import path (gRPC or any other client). It runs
    under gevent's monkey-patching in the worker, once per arrival, with `args` / `kwargs`."""
    target: dict[str, Any] = {
        "kind": "callable",
        "path": import_path(path, "target"),
        "args": list(args),
        "kwargs": kwargs,
    }
    _json_able(target, "the arguments")
    return target


def describe(target: Mapping[str, Any]) -> str:
    """A short label: ``POST http://.../predict`` or ``mypkg.client:predict``."""
    if target["kind"] == "http":
        return f"{target['method']} {target['url']}"
    return str(target["path"])
