"""A clip damaged in the middle: the frames that cannot be decoded are counted and reported, the frames
after them still delivered — never a silent early end with every counter at 0."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sdk.cli import main
from sdk.sources import open_source

FRAMES = 90


def _clip(path: Path, fourcc: str) -> Path:
    import cv2

    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 30, (64, 48))
    for i in range(FRAMES):
        f = np.zeros((48, 64, 3), np.uint8)
        f[:, (i * 5) % 64:] = 200
        f[(i * 3) % 48:, :, 1] = 100
        w.write(f)
    w.release()
    return path


def _garble(src: Path, dst: Path, start: float, end: float) -> Path:
    raw = bytearray(src.read_bytes())
    a, b = int(len(raw) * start), int(len(raw) * end)
    raw[a:b] = np.random.default_rng(0).integers(0, 256, b - a, dtype=np.uint8).tobytes()
    dst.write_bytes(bytes(raw))
    return dst


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("damaged")
    mp4, avi = _clip(d / "ok.mp4", "mp4v"), _clip(d / "ok.avi", "MJPG")
    return {"ok": mp4, "middle": _garble(mp4, d / "middle.mp4", 0.35, 0.6),
            "tail": _garble(avi, d / "tail.avi", 0.7, 1.0)}


def test_healthy_clip_has_no_decode_errors(clips, capsys) -> None:
    with open_source(str(clips["ok"])) as src:
        n = sum(1 for _ in src)
    assert n == FRAMES and src.stats.decode_errors == 0 and src.stats.gaps == 0
    assert main(["probe", str(clips["ok"]), "-n", "0", "--quiet"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_garbled_middle_is_counted_and_the_rest_delivered(clips, capsys) -> None:
    with open_source(str(clips["middle"])) as src:
        items = list(src)
    lost = src.stats.decode_errors
    assert lost > 0 and src.stats.gaps >= 1
    assert len(items) + lost == FRAMES  # every declared frame is either delivered or counted
    gaps = [i for i in items if i.meta.get("gap")]
    assert gaps and gaps[0].meta["frame"] > gaps[0].seq  # frame numbers jump over the damage
    assert items[-1].meta["frame"] == FRAMES - 1  # decoding went on after the damage
    assert main(["probe", str(clips["middle"]), "-n", "0", "--json"]) == 1
    out = capsys.readouterr()
    assert f'"decode_errors": {lost}' in out.out and "could not be decoded" in out.err


def test_undecodable_tail_is_counted(clips) -> None:
    with open_source(str(clips["tail"])) as src:
        n = sum(1 for _ in src)
    assert 0 < n < FRAMES and src.stats.decode_errors == FRAMES - n
