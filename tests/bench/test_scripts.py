"""Every bench script is a command a user can ask for help: ``--help`` explains it and exits at once
(four of them used to ignore their arguments and start a run that rewrote bench/results/)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
SCRIPTS = sorted(p for p in BENCH.glob("*.py") if not p.name.startswith("_"))


def test_there_are_bench_scripts() -> None:
    assert len(SCRIPTS) >= 10


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_help_explains_and_runs_nothing(script: Path) -> None:
    results = {p: p.stat().st_mtime_ns for p in (BENCH / "results").glob("*")}
    r = subprocess.run([sys.executable, str(script), "--help"], check=False, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith("usage:") and len(r.stdout.splitlines()) >= 4, r.stdout
    assert {p: p.stat().st_mtime_ns for p in (BENCH / "results").glob("*")} == results
