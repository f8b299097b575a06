"""The HTML report (``--latency-html``), its plots, and ``pytest-latency plot``.

Renderer tests use real `Result`s decided by `evaluate` on fixed samples, in their JSON form,
so they are deterministic; the option is tested through pytester; the page is rendered in a
real headless Chromium where one is installed.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="needs matplotlib: pip install 'pytest-latency[report]'")

from pytest_latency.cli import main
from pytest_latency.core.accuracy import evaluate_accuracy
from pytest_latency.core.evaluate import evaluate
from pytest_latency.core.result import Result
from pytest_latency.core.samples import Samples
from pytest_latency.core.spec import AccuracySpec, Spec
from pytest_latency.plugin.gate import AccuracyResult
from pytest_latency.report import plots
from pytest_latency.report.html import render_html
from pytest_latency.report.json_report import build_report, write_report

RNG = np.random.default_rng(5)


def measured(nodeid: str, ms: Any, name: str = "fn", **slo: Any) -> dict[str, Any]:
    """A result as the plugin records it: decided by `evaluate`, in its JSON form."""
    samples = Samples(
        latencies_ns=(np.asarray(ms) * 1e6).astype(np.int64),
        cold_start_ns=int(float(np.max(ms)) * 3e6),
        wall_ns=int(np.sum(ms) * 1e6),
    )
    spec = Spec.from_kwargs(**slo).resolved({})
    data = Result(name, spec, samples, evaluate(samples, spec), nodeid=nodeid).to_dict()
    return {**data, "outcome": "passed" if data["decision"] == "PASS" else "failed"}


def gate(nodeid: str, wrong: int) -> dict[str, Any]:
    labels = [i % 2 for i in range(400)]
    candidate = [1 - y if i < wrong else y for i, y in enumerate(labels)]
    spec = AccuracySpec(max_drop=0.02)
    verdict = evaluate_accuracy(candidate, labels, labels, max_drop=spec.max_drop)
    return AccuracyResult("accuracy", spec, verdict, nodeid).to_dict()


FAST = measured("test_m.py::test_fast", RNG.uniform(1.0, 1.3, 600), p50_ms=5, p99_ms=10)
SLOW = measured("test_m.py::test_slow", RNG.uniform(4.0, 9.0, 600), p99_ms=2.5)
BEFORE_FAST = measured("test_m.py::test_fast", RNG.uniform(2.0, 2.6, 600), p50_ms=5, p99_ms=10)


def report(*results: dict[str, Any], accuracy: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    return build_report(list(results), {"confidence": 0.95, "seed": 1}, accuracy=accuracy)


def images(html: str) -> dict[str, bytes]:
    """alt text -> PNG bytes of every embedded image."""
    found = re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,([^"]+)">', html)
    return {alt: base64.b64decode(data) for alt, data in found}


def section(html: str, nodeid: str) -> str:
    start = html.index(f">{nodeid} <span")
    end = html.find("<h3", start)
    return html[start : end if end > 0 else len(html)]


# -- the page -----------------------------------------------------------------------------


def test_page_has_a_plot_the_targets_and_the_verdict_of_every_measurement() -> None:
    html = render_html(report(FAST, SLOW))

    assert set(images(html)) == {
        "latency plots of test_m.py::test_fast",
        "latency plots of test_m.py::test_slow",
    }
    fast, slow = section(html, "test_m.py::test_fast"), section(html, "test_m.py::test_slow")
    assert '<span class="badge PASS">PASS</span>' in fast
    assert "&le; 5.00 ms" in fast
    assert "&le; 10.00 ms" in fast
    assert '<span class="badge FAIL">FAIL</span>' in slow
    assert "&le; 2.50 ms" in slow
    assert "FAIL: p99 is over 2.5 ms with 95% confidence" in slow
    assert "1 PASS" in html
    assert "1 FAIL" in html
    assert "cpu_model" in html
    assert "seed=1" in html


def test_page_is_self_contained_with_real_png_plots() -> None:
    html = render_html(report(FAST))

    assert "<script" not in html
    assert not re.search(r'(src|href)="(https?:)?//', html)
    png = images(html)["latency plots of test_m.py::test_fast"]
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    from matplotlib.image import imread

    pixels = imread(io.BytesIO(png))
    assert pixels.shape[1] == 13 * plots.DPI
    assert pixels.shape[0] > 300
    assert pixels[..., :3].std() > 0.1  # not a blank canvas


def test_tail_plot_marks_each_target_and_its_estimate_with_bounds() -> None:
    fig = plots.measurement_figure(FAST)
    tail = fig.axes[1]
    vertical = {line.get_xdata()[0] for line in tail.get_lines() if _is_vertical(line)}
    assert {5, 10} <= vertical
    p99 = next(t for t in FAST["targets"] if t["metric"] == "p99")
    dots = [line for line in tail.get_lines() if line.get_marker() == "o"]
    assert any(np.allclose(d.get_xydata(), [[p99["observed"], 1 - 0.99]]) for d in dots), (
        "the p99 estimate sits at the p99 level"
    )
    bars = [line.get_xdata() for line in tail.get_lines() if line.get_linewidth() == 3]
    assert any(np.allclose(bar, [p99["lower"], p99["upper"]]) for bar in bars)
    assert tail.get_yscale() == "log"


def _is_vertical(line: Any) -> bool:
    x = np.asarray(line.get_xdata(), dtype=float)
    return len(x) == 2 and x[0] == x[1]


def test_latency_axis_turns_logarithmic_only_when_the_tail_needs_it() -> None:
    tight = measured("t::tight", RNG.uniform(1.0, 1.2, 600), p99_ms=1.5)
    long_tail = measured("t::long", np.r_[np.full(590, 1.0), np.full(10, 8.0)], p99_ms=20)
    assert not plots.use_log_x(tight)
    assert plots.use_log_x(long_tail)
    assert plots.measurement_figure(long_tail).axes[1].get_xscale() == "log"
    assert plots.measurement_figure(tight).axes[1].get_xscale() == "linear"


def test_saved_run_is_overlaid_and_its_percentiles_compared() -> None:
    fig = plots.measurement_figure(FAST, BEFORE_FAST)
    for ax in fig.axes[:2]:  # histogram and tail
        labels = [h.get_label() for h in ax.get_legend_handles_labels()[0]]
        assert "saved run" in labels
        assert "this run" in labels

    html = render_html(report(FAST, SLOW), report(BEFORE_FAST), saved_name="before.json")
    assert "saved run: before.json (1 of 2 measurement(s) matched by test id and name)" in html
    fast = section(html, "test_m.py::test_fast")
    change = (FAST["percentiles_ms"]["p50"] / BEFORE_FAST["percentiles_ms"]["p50"]) - 1
    assert "saved run ms" in fast
    assert f"{change:+.1%}" in fast
    assert "no measurement with this test id" in section(html, "test_m.py::test_slow")
    assert '<span class="PASS">improvement</span>' in fast  # ~1.15 ms against ~2.3 ms
    assert "ratio [bounds]" in fast
    without = images(render_html(report(FAST)))["latency plots of test_m.py::test_fast"]
    assert images(html)["latency plots of test_m.py::test_fast"] != without


def test_measurement_without_successful_samples_shows_its_first_error_instead_of_plots() -> None:
    samples = Samples(
        latencies_ns=np.array([], dtype=np.int64), errors=3, first_error="ValueError: boom"
    )
    spec = Spec(p99_ms=5).resolved({})
    broken = Result("fn", spec, samples, evaluate(samples, spec), nodeid="t::broken").to_dict()
    html = render_html(report(broken))
    assert not images(html)
    assert "no successful samples: nothing to plot" in html
    assert "ValueError: boom" in html


def test_accuracy_gates_have_their_own_section_with_intervals_and_a_plot() -> None:
    html = render_html(report(FAST, accuracy=(gate("test_a.py::test_int8", wrong=2),)))
    accuracy = html[html.index("<h2>Accuracy gates</h2>") : html.index("<h2>Environment")]
    assert "test_a.py::test_int8" in accuracy
    assert "0.50% [" in accuracy
    assert "2.00%" in accuracy  # max drop
    assert "accuracy gates" in images(html)


# -- --latency-html ---------------------------------------------------------------------------

TESTS = """
import pytest

@pytest.mark.slo(p50_ms=50, warmup=5, max_samples=400)
def test_fast(latency):
    latency(sorted, [3, 2, 1])

@pytest.mark.slo(p99_ms=0.0001, warmup=5, max_samples=400)
def test_impossible(latency):
    latency(sorted, list(range(50)))
"""


def test_option_writes_the_report_and_says_where(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_two=TESTS)
    pytester.mkdir("out")  # a report's folder must exist: nothing is created for it
    result = pytester.runpytest("--latency-html=out/report.html", "--latency-json=run.json")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["latency JSON written to run.json", "latency HTML report written to out/report.html"]
    )
    html = (pytester.path / "out" / "report.html").read_text()
    assert set(images(html)) == {
        "latency plots of test_two.py::test_fast",
        "latency plots of test_two.py::test_impossible",
    }
    assert "&le; 50.00 ms" in html
    assert "&le; 0.0001 ms" in html
    assert "test failed; " in section(html, "test_two.py::test_impossible")
    assert not list(pytester.path.glob("out/.*.tmp"))


def test_ini_value_writes_the_report_too(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nlatency_html = reports/ini.html\n")
    pytester.mkdir("reports")
    pytester.makepyfile(test_two=TESTS)
    pytester.runpytest("-k", "fast").assert_outcomes(passed=1, deselected=1)
    assert "test_two.py::test_fast" in (pytester.path / "reports" / "ini.html").read_text()


@pytest.mark.parametrize("value", ["report.txt", "report"])
def test_option_rejects_a_path_that_is_not_html(pytester: pytest.Pytester, value: str) -> None:
    result = pytester.runpytest(f"--latency-html={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"*{value!r} is not a valid --latency-html*Valid: a file path ending in .html or .htm"]
    )


def test_option_without_matplotlib_is_a_usage_error_naming_the_install(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # find_spec now answers None
    result = pytester.runpytest("--latency-html=r.html")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--latency-html need matplotlib*pip install*[report]*"])


def test_option_overlays_the_latency_compare_saved_run_and_tabulates_the_change(
    pytester: pytest.Pytester,
) -> None:
    slower = measured("test_two.py::test_fast", RNG.uniform(2, 3, 400), "sorted", p50_ms=50)
    write_report(pytester.path / "before.json", report(slower))
    pytester.makepyfile(test_two=TESTS)
    result = pytester.runpytest("--latency-html=r.html", "--latency-compare=before.json")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["latency HTML report written to r.html"])
    html = (pytester.path / "r.html").read_text()
    assert "saved run: before.json (1 of 2 measurement(s) matched by test id and name)" in html
    assert "<th>vs saved run</th>" in html  # the overview's column
    fast = section(html, "test_two.py::test_fast")
    assert "<b>vs saved run</b> (threshold &plusmn;10%)" in fast
    assert '<span class="PASS">improvement</span>' in fast  # sorted() is far under 2 ms
    assert "saved run ms" in fast
    impossible = section(html, "test_two.py::test_impossible")
    assert "no measurement with this test id and name" in impossible
    assert '<span class="muted">new</span>' in html


# -- pytest-latency plot ----------------------------------------------------------------------


@pytest.fixture
def runs(tmp_path: Path) -> tuple[Path, Path]:
    before, after = tmp_path / "before.json", tmp_path / "after.json"
    write_report(before, report(BEFORE_FAST))
    write_report(after, report(FAST, SLOW))
    return before, after


def test_plot_draws_one_row_per_measurement_in_the_format_of_the_extension(
    runs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before, after = runs
    assert main(["plot", str(after), "-o", str(tmp_path / "a.png")]) == 0
    assert (tmp_path / "a.png").read_bytes().startswith(b"\x89PNG")
    for name in ("a.svg", "again.svg"):
        assert main(["plot", str(before), str(after), "-o", str(tmp_path / name)]) == 0
    assert "<svg" in (tmp_path / "a.svg").read_text()
    assert (tmp_path / "a.svg").read_bytes() == (tmp_path / "again.svg").read_bytes()
    out = capsys.readouterr().out
    assert f"a.svg: 2 measurement(s), 1 overlaid on {before}" in out
    assert main(["plot", str(after), "-o", str(tmp_path / "a.pdf")]) == 0
    pdf = (tmp_path / "a.pdf").read_bytes()
    assert pdf.startswith(b"%PDF")
    assert len(re.findall(rb"/Type\s*/Page\b", pdf)) == 2


def test_plot_to_html_renders_the_report_with_the_saved_run(
    runs: tuple[Path, Path], tmp_path: Path
) -> None:
    before, after = runs
    assert main(["plot", str(before), str(after), "-o", str(tmp_path / "r.html")]) == 0
    html = (tmp_path / "r.html").read_text()
    assert f"saved run: {before} (1 of 2 measurement(s) matched by test id and name)" in html
    assert len(images(html)) == 2


def test_plot_filters_tests_by_node_id(runs: tuple[Path, Path], tmp_path: Path) -> None:
    _, after = runs
    assert main(["plot", str(after), "-o", str(tmp_path / "r.html"), "-k", "slow"]) == 0
    assert set(images((tmp_path / "r.html").read_text())) == {
        "latency plots of test_m.py::test_slow"
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "out.jpg"], "-o 'out.jpg': the extension must name the format. Valid: .png, .svg"),
        (["-o", "out.png", "-k", "nothing"], "no measurement with samples to plot (0 result(s)"),
        (["-o", "out.html", "--threshold", "ten"], "'ten' is not a valid threshold"),
    ],
)
def test_plot_rejects_bad_input_with_what_is_valid(
    runs: tuple[Path, Path], capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["plot", str(runs[1]), *args]) == 2
    assert message in capsys.readouterr().err


def test_plot_refuses_three_runs_and_files_that_are_not_reports(
    runs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before, after = runs
    assert main(["plot", str(before), str(after), str(after), "-o", "x.png"]) == 2
    assert "one run or two (before, after), not 3" in capsys.readouterr().err
    (tmp_path / "other.json").write_text(json.dumps({"schema": "other"}))
    assert main(["plot", str(tmp_path / "other.json"), "-o", "x.png"]) == 2
    assert "schema 'other' is not 'pytest-latency/1'" in capsys.readouterr().err


def test_plot_sends_runs_too_tall_for_one_image_to_pdf_or_html(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    many = [{**FAST, "nodeid": f"test_m.py::test_{i}"} for i in range(41)]
    write_report(tmp_path / "many.json", report(*many))
    assert main(["plot", str(tmp_path / "many.json"), "-o", str(tmp_path / "x.png")]) == 2
    assert "41 measurements make an image too tall" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_plot_without_matplotlib_names_the_install(
    runs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["plot", str(runs[1]), "-o", "x.png"]) == 2
    assert "pytest-latency plot need matplotlib" in capsys.readouterr().err


def test_importing_the_plugin_and_the_cli_loads_no_matplotlib() -> None:
    code = (
        "import sys, pytest_latency.plugin, pytest_latency.cli, pytest_latency.report.html\n"
        "assert 'matplotlib' not in sys.modules"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# -- in a real browser ------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="needs a headless Chromium: apt-get install chromium",
)
def test_report_renders_in_headless_chromium_with_its_plots(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(report(FAST, SLOW, accuracy=(gate("t::acc", 2),))))
    shot = tmp_path / "shot.png"
    # Chromium writes a crash database and caches under HOME even with --user-data-dir:
    # keep them in tmp_path too.
    home = {k: str(tmp_path / "home") for k in ("HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME")}
    proc = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1400,2400",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **home},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shot.exists(), proc.stderr[-2000:]
    from matplotlib.image import imread

    pixels = imread(str(shot))[..., :3]
    assert pixels.shape[:2] == (2400, 1400)
    not_white = (pixels < 0.95).any(axis=-1).mean()
    assert 0.03 < not_white < 0.9, f"{not_white:.1%} of the screenshot is not white"
    # The plots' own blue (this run's curve and bars) shows: the images decoded and rendered.
    blue = np.array([int(plots.THIS_RUN[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    assert (np.abs(pixels - blue).max(axis=-1) < 0.08).sum() > 500
