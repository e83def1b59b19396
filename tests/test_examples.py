"""The gallery examples run headless, as a user would run them."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_plot_minima(tmp_path):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "plot_minima.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    png = tmp_path / "plot_minima.png"
    assert png.exists(), proc.stdout
    assert png.stat().st_size > 50_000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fits = [line for line in proc.stdout.splitlines() if line.startswith("variance")]
    assert len(fits) == 9, proc.stdout
    assert "total time of the 9 fits" in proc.stdout
