"""Every script in examples/ runs as a user would run it and prints what it promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXPECT = {
    "classify_video.py": "the ball was seen in",
    "tier_switching.py": "tier.switch",
    "drift_telemetry.py": "-> alert",
    "export_to_c.py": "host check",
    "audio_chunks.py": "chunk 4: 16000 samples at 16000 Hz",
}


def test_every_example_is_listed() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECT)


@pytest.mark.parametrize("script", sorted(EXPECT))
def test_example_runs(script: str, tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, str(EXAMPLES / script)], check=False, cwd=tmp_path, capture_output=True,
                         text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-2000:]
    assert EXPECT[script] in run.stdout, run.stdout[-2000:]
