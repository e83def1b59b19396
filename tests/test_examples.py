"""The gallery examples run headless, as a user would run them."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each example runs in a process of its own

pytest.importorskip("matplotlib")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _run_example(name, tmp_path):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    png = tmp_path / f"{name}.png"
    assert png.exists(), proc.stdout
    assert png.stat().st_size > 50_000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return proc.stdout


def test_plot_minima(tmp_path):
    out = _run_example("plot_minima", tmp_path)
    fits = [line for line in out.splitlines() if line.startswith("variance")]
    assert len(fits) == 9, out
    assert "total time of the 9 fits" in out


def test_plot_simple_gaussian(tmp_path):
    out = _run_example("plot_simple_gaussian", tmp_path)
    lines = [line for line in out.splitlines() if "iterations in" in line]
    assert [line.split("  ")[0] for line in lines] == [
        "KSD descent, L-BFGS",
        "KSD descent, gradient steps",
        "SVGD",
        "MMD descent, L-BFGS",
    ], out


def test_plot_quantitative_expe_gaussian(tmp_path):
    out = _run_example("plot_quantitative_expe_gaussian", tmp_path)
    runs = [line for line in out.splitlines() if "iterations in" in line]
    assert len(runs) == 5 * 4, out
    assert "30 exact samples: KSD^2 =" in out


def test_plot_init(tmp_path):
    out = _run_example("plot_init", tmp_path)
    runs = [line for line in out.splitlines() if line.startswith("start ")]
    assert len(runs) == 2, out
    assert "right mode 0," in runs[0], out


def test_plot_skewed(tmp_path):
    out = _run_example("plot_skewed", tmp_path)
    counts = [
        int(line.split(": ")[1].split()[0])
        for line in out.splitlines()
        if line.startswith("component ")
    ]
    assert len(counts) == 3 and min(counts) > 0, out


def test_plot_temperature(tmp_path):
    out = _run_example("plot_temperature", tmp_path)
    stranded = [
        int(line.rsplit("stranded ", 1)[1]) for line in out.splitlines() if "iterations in" in line
    ]
    assert len(stranded) == 3, out
    assert stranded[2] < stranded[0], out


def test_plot_logistic_regression(tmp_path):
    out = _run_example("plot_logistic_regression", tmp_path)
    majority = float(out.split("majority class: ")[1].split()[0])
    accuracies = [
        float(line.split("test accuracy ")[1].split(",")[0])
        for line in out.splitlines()
        if "test accuracy" in line
    ]
    assert len(accuracies) == 2, out
    assert min(accuracies) > majority, out


def test_plot_ica(tmp_path):
    out = _run_example("plot_ica", tmp_path)
    medians = [line for line in out.splitlines() if "median Amari distance" in line]
    assert len(medians) == 6, out


def test_plot_goodness_of_fit(tmp_path):
    out = _run_example("plot_goodness_of_fit", tmp_path)
    power = {
        line.split(": ")[0]: [float(v) for v in line.split(": ")[1].split(", ")]
        for line in out.splitlines()
        if line.startswith("power of ")
    }
    assert len(power) == 4 and all(len(v) == 5 for v in power.values()), out
    assert power["power of KSDAgg"][-1] == 1.0, out
    assert "reject: True" in out and "reject: False" in out, out
