"""Option values an attacker (or a typo) chooses: each is a one-line SourceError naming the option and
its bounds, raised before the source allocates anything."""

from __future__ import annotations

import resource
from pathlib import Path

import numpy as np
import pytest

from sdk.errors import SourceError
from sdk.sources import open_source


@pytest.fixture(scope="module")
def wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import soundfile

    path = tmp_path_factory.mktemp("audio") / "tone.wav"
    soundfile.write(path, (np.sin(np.arange(16000) / 5) * 0.3).astype(np.float32), 16000)
    return path


@pytest.fixture(scope="module")
def csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("csv") / "x.csv"
    path.write_text("a,b\n" + "".join(f"{i},{i * 2}\n" for i in range(20)))
    return path


def _first(uri: str) -> None:
    with open_source(uri) as src:
        next(iter(src))


@pytest.mark.parametrize("uri,option", [
    ("{wav}?rate=-16000", "rate"),
    ("{wav}?rate=1000000000", "rate"),
    ("{wav}?chunk_ms=0", "chunk_ms"),
    ("{wav}?hop_ms=-1", "hop_ms"),
    ("{wav}?channels=0", "channels"),
    ("{csv}?block=0", "block"),
    ("{csv}?rate=-5", "rate"),
    ("{csv}?time_scale=inf", "time_scale"),
    ("synthetic://ecg?block=0", "block"),
    ("synthetic://ecg?hr=nan", "hr"),
    ("synthetic://ecg?rate=1e300", "rate"),
    ("synthetic://tone?rate=0", "rate"),
    ("synthetic://tone?rate=1000000000", "rate"),
    ("synthetic://video?fps=0&realtime=true", "fps"),
    ("synthetic://video?width=-5", "width"),
    ("synthetic://video?height=100000", "height"),
    ("synthetic://video?seed=-1", "seed"),
    ("synthetic://video?frames=-3", "frames"),
    ("v4l2:///dev/video0?buffer=0", "buffer"),
    ("v4l2:///dev/video0?width=-5", "width"),
    ("csi://0?fps=0", "fps"),
])
def test_out_of_range_option_is_a_one_line_source_error(uri: str, option: str, wav: Path, csv: Path) -> None:
    uri = uri.format(wav=wav, csv=csv)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(SourceError, match=rf"option {option}=.* (is out of range|is not a valid)") as e:
        _first(uri)
    msg = str(e.value)
    assert "\n" not in msg and "between" in msg or "finite" in msg
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: nothing big allocated


def test_a_huge_chunk_within_each_bound_is_refused_before_allocating() -> None:
    with pytest.raises(SourceError, match="over the limit"):
        _first("synthetic://tone?rate=768000&chunk_ms=60000")


@pytest.mark.parametrize("uri", ["synthetic://tone?rate=8000&chunk_ms=250",
                                 "synthetic://video?width=32&height=24&frames=2&fps=1000&realtime=true",
                                 "synthetic://ecg?block=1&hr=250&duration=1"])
def test_values_at_the_bounds_still_work(uri: str) -> None:
    _first(uri)
