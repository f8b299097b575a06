"""How a test fails (or warns) on its verdict: exception types a strict xfail can name.

    @pytest.mark.xfail(strict=True, raises=LatencyMissed, reason="FP32 is too slow here")
    @pytest.mark.slo(p99_ms=10)
    def test_fp32_misses_10ms(latency, fp32):
        latency(fp32.predict, "a fine film")

`LatencyMissed` is raised only when the measurement itself was sound and a latency or
throughput target was missed: no errors beyond ``max_error_rate``, no hung call, a load
generator that kept up. Anything else -- a crash, 100 % HTTP errors, a hang, an INCONCLUSIVE
verdict -- raises the broader `SloFailure` (or the original exception), so a strict xfail
that names `LatencyMissed` still fails the run when the code under test is broken.
"""

from __future__ import annotations

from typing import NoReturn

import pytest


class PytestLatencyWarning(UserWarning):
    """A verdict that was not enforced: an SLO not decided under
    ``--latency-inconclusive=warn``, or one that could not be checked at all."""


class SloFailure(pytest.fail.Exception):  # type: ignore[misc,name-defined]
    """The test failed on a latency verdict (FAIL, or INCONCLUSIVE under the 'fail' policy)."""


class LatencyMissed(SloFailure):
    """A sound measurement missed a latency or throughput target with confidence."""


def fail(message: str, latency_missed: bool = False) -> NoReturn:
    """Fail the running test with `message` (no traceback): `LatencyMissed` or `SloFailure`."""
    raise (LatencyMissed if latency_missed else SloFailure)(message, pytrace=False)
