"""The ``POST /predict`` request contract: read the body within limits, parse, validate, normalise.

One pass over the bytes, no pydantic: the co-located front's whole budget is 10 ms at p99, and
this runs on every request of every front::

    texts = parse_texts(await read_body(request))    # or raises BadRequest
    # -> 1-32 texts, each NFKC-normalised, whitespace-collapsed and lowercased

The limits, and what a client gets for breaking them (a JSON body
``{"error": CODE, "detail": "what was wrong and what is valid"}``):

=====================================================  ======  =========================
problem                                                status  ``error``
=====================================================  ======  =========================
body over :data:`MAX_BODY_BYTES` (Content-Length, or    413     ``body_too_large``
counted while it streams in)
body not complete within :data:`BODY_TIMEOUT_S`         408     ``body_timeout``
a Content-Length that is not a number                  400     ``bad_content_length``
body not UTF-8 / not JSON / nested too deeply          422     ``invalid_utf8`` /
                                                               ``invalid_json``
not ``{"texts": [...]}`` (other fields, wrong types)   422     ``invalid_field``
0 or more than :data:`MAX_TEXTS` texts                  422     ``bad_text_count``
a text that is not a string, blank, a lone surrogate,  422     ``invalid_text``
or over :data:`MAX_CHARS` as sent or once normalised
=====================================================  ======  =========================

408 and 413 close the connection (the rest of the body is never read).

**One text, one string.** Each text is normalised once here (:func:`canonical_text`: the cache's
:func:`~reference_system.serving.prediction_cache.normalise`, applied until it no longer
changes anything) and that string is what the backends tokenise *and* what the cache keys
hash. Two texts that tokenise differently therefore never share a cache entry, and a text that
grows under normalisation (U+FDFA is 18 characters in NFKC) is held to the same limit as any
other.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from reference_system.serving.prediction_cache import normalise

__all__ = [
    "BODY_TIMEOUT_S",
    "MAX_BODY_BYTES",
    "MAX_CHARS",
    "MAX_TEXTS",
    "BadRequest",
    "canonical_text",
    "parse_texts",
    "read_body",
]

MAX_TEXTS = 32
MAX_CHARS = 2000
# A valid request never needs more: 32 texts x 2,000 characters x 12 bytes (a character outside
# the BMP written as two \uXXXX escapes) is 768,000 bytes, plus the JSON around them.
MAX_BODY_BYTES = 1 << 20
# The whole body must arrive within this; a client trickling bytes holds a connection and a
# task, never more than this long.
BODY_TIMEOUT_S = 5.0
_EXPECTED = f'{{"texts": ["...", ...]}} with 1 to {MAX_TEXTS} texts of 1 to {MAX_CHARS} characters'
# normalise() is idempotent on everything we know of; a text that keeps changing after this
# many passes is refused rather than looped over.
_MAX_NORMALISE_PASSES = 3


class BadRequest(Exception):
    """A request the service refuses: ``status`` (4xx), a stable ``error`` code and a
    ``detail`` that names the problem and what would be valid."""

    def __init__(self, status: int, error: str, detail: str, *, close: bool = False) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail, self.close = status, error, detail, close

    def response(self) -> Response:
        headers = {"Connection": "close"} if self.close else None
        body = json.dumps({"error": self.error, "detail": self.detail}, ensure_ascii=True)
        return Response(body, self.status, headers=headers, media_type="application/json")


async def read_body(
    request: Request, *, max_bytes: int = MAX_BODY_BYTES, timeout_s: float = BODY_TIMEOUT_S
) -> bytes:
    """The request's body, refused before it is read when its Content-Length is over
    `max_bytes`, and while it streams in as soon as it passes `max_bytes` (a chunked body has
    no Content-Length) or `timeout_s` passes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest(
                400,
                "bad_content_length",
                f"Content-Length {declared[:40]!r} is not a number of bytes; send the body's "
                "length in bytes, or no Content-Length with a chunked body",
                close=True,
            )
        if int(declared) > max_bytes:
            raise BadRequest(413, "body_too_large", _too_large(f"{declared} bytes"), close=True)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_bytes:
                    raise BadRequest(
                        413, "body_too_large", _too_large(f"over {max_bytes} bytes"), close=True
                    )
                chunks.append(chunk)
    except TimeoutError:
        expected = f" of {declared}" if declared is not None else ""
        raise BadRequest(
            408,
            "body_timeout",
            f"the body did not arrive within {timeout_s:g} s ({size}{expected} bytes came); "
            "send the whole request at once",
            close=True,
        ) from None
    except ClientDisconnect:
        raise BadRequest(400, "client_disconnected", "the client left mid-body") from None
    return b"".join(chunks)


def _too_large(size: str) -> str:
    return (
        f"the body is {size}; the limit is {MAX_BODY_BYTES} bytes (a valid request, "
        f"{MAX_TEXTS} texts of {MAX_CHARS} characters, fits well within it)"
    )


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _invalid(error: str, detail: str) -> BadRequest:
    return BadRequest(422, error, detail)


def canonical_text(text: str) -> str:
    """The one string a text becomes: what the model tokenises and the cache key hashes.

    ``normalise`` (NFKC, whitespace runs collapsed, lowercased) until it is a fixed point, so
    the cache, which normalises again when it makes a key, hashes exactly this string.

    >>> canonical_text("  A  \\ufb01ne\\tFILM ")
    'a fine film'
    """
    out = normalise(text)
    if out.isascii():  # NFKC, split and lower() of ASCII give ASCII that they leave alone
        return out
    for _ in range(_MAX_NORMALISE_PASSES):
        again = normalise(out)
        if again == out:
            return out
        out = again
    raise ValueError("does not settle under normalisation")


def _check_text(i: int, text: Any) -> str:
    if type(text) is not str:
        shown = json.dumps(text)[:40] if isinstance(text, int | float) else ""
        raise _invalid(
            "invalid_text",
            f"texts[{i}] is {_json_type(text)}{f' ({shown})' if shown else ''}; every text "
            "must be a string",
        )
    if len(text) > MAX_CHARS:
        raise _invalid(
            "invalid_text",
            f"texts[{i}] has {len(text)} characters; each text needs 1 to {MAX_CHARS} "
            "non-blank characters",
        )
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise _invalid(
                "invalid_text",
                f"texts[{i}] has a lone surrogate U+{ord(text[exc.start]):04X} at character "
                f"{exc.start} (a \\u escape without its pair); texts must be valid Unicode: "
                "write a character outside the BMP as a surrogate pair or as UTF-8",
            ) from None
    try:
        seen = canonical_text(text)
    except ValueError:
        raise _invalid(
            "invalid_text", f"texts[{i}] keeps changing under Unicode normalisation; rephrase it"
        ) from None
    if len(seen) > MAX_CHARS:
        raise _invalid(
            "invalid_text",
            f"texts[{i}] has {len(seen)} characters after Unicode NFKC normalisation "
            f"({len(text)} as sent); each text needs 1 to {MAX_CHARS} non-blank characters "
            "once normalised",
        )
    if not seen:
        raise _invalid(
            "invalid_text",
            f"texts[{i}] has {len(text)} characters, all whitespace; each text needs 1 to "
            f"{MAX_CHARS} non-blank characters",
        )
    return seen


def parse_texts(body: bytes) -> list[str]:
    """The request's texts, each as :func:`canonical_text` makes it, or :class:`BadRequest`."""
    try:
        decoded = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _invalid(
            "invalid_utf8",
            f"the body is not valid UTF-8 (byte {exc.start} is {body[exc.start : exc.start + 1]!r}"
            f"); send {_EXPECTED}, encoded as UTF-8",
        ) from None
    try:
        payload = json.loads(decoded)
    except json.JSONDecodeError as exc:
        raise _invalid(
            "invalid_json",
            f"the body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}; send "
            f"{_EXPECTED}",
        ) from None
    except (RecursionError, ValueError) as exc:  # deep nesting; an integer of 5,000 digits
        raise _invalid(
            "invalid_json", f"the body is not JSON this service reads ({exc}); send {_EXPECTED}"
        ) from None
    if type(payload) is not dict:
        raise _invalid("invalid_field", f"the body is {_json_type(payload)}; send {_EXPECTED}")
    if len(payload) != 1 or "texts" not in payload:
        unknown = sorted(str(k)[:40] for k in payload if k != "texts")
        what = f"unknown field(s) {unknown}" if unknown else 'the field "texts" is missing'
        raise _invalid("invalid_field", f"{what}; send {_EXPECTED}")
    texts = payload["texts"]
    if type(texts) is not list:
        raise _invalid(
            "invalid_field",
            f'"texts" is {_json_type(texts)}; it must be a list of 1 to {MAX_TEXTS} strings',
        )
    if not 1 <= len(texts) <= MAX_TEXTS:
        raise _invalid(
            "bad_text_count",
            f'"texts" has {len(texts)} items; send 1 to {MAX_TEXTS} texts per request',
        )
    return [_check_text(i, text) for i, text in enumerate(texts)]
