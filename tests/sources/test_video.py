"""Video files and image sequences, on real files written with OpenCV."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from sdk.errors import SourceError
from sdk.sources import Source, open_source
from sdk.sources.video import ImageSequenceSource, VideoFileSource


def test_clip_delivers_every_frame_in_order(clip: Path) -> None:
    src = open_source(f"file://{clip}")
    assert isinstance(src, VideoFileSource) and isinstance(src, Source)
    with src:
        items = list(src)
    assert len(items) == 12 and src.stats.delivered == 12 and src.stats.dropped == 0
    assert [i.seq for i in items] == list(range(12))
    assert [i.meta["frame"] for i in items] == list(range(12))
    assert items[3].meta["pts"] == pytest.approx(0.3)
    means = [float(i.data.mean()) for i in items]
    assert means == pytest.approx([20.0 * k for k in range(12)], abs=4)  # the frames we wrote
    meta = items[0].meta
    assert meta["fps"] == pytest.approx(10.0) and meta["shape"] == (48, 64, 3) and meta["live"] is False
    assert meta["uri"] == f"file://{clip}" and meta["kind"] == "video"
    assert items[0].data.dtype == np.uint8
    assert all(a.timestamp <= b.timestamp for a, b in itertools.pairwise(items))


def test_bare_path_and_loop(clip: Path) -> None:
    with open_source(str(clip), loop=True) as src:
        frames = [item.meta["frame"] for _, item in zip(range(15), src)]
    assert frames == list(range(12)) + [0, 1, 2]


def test_realtime_paces_at_native_rate(clip: Path) -> None:
    import time

    with open_source(f"file://{clip}?realtime=true") as src:
        t0 = time.monotonic()
        items = list(src)
        elapsed = time.monotonic() - t0
    assert len(items) == 12
    assert elapsed >= 11 / 10.0 * 0.9  # 12 frames at 10 fps span 1.1 s; never faster than that


def test_image_folder_and_glob(image_dir: Path) -> None:
    with open_source(f"file://{image_dir}/") as src:
        assert isinstance(src, ImageSequenceSource)
        items = list(src)
    assert [Path(i.meta["path"]).name for i in items] == [f"f{k:03d}.png" for k in range(5)]
    assert [int(i.data.mean()) for i in items] == [0, 40, 80, 120, 160]
    with open_source(f"file://{image_dir}/f00[13].png") as src:
        assert [Path(i.meta["path"]).name for i in src] == ["f001.png", "f003.png"]
    with open_source(str(image_dir / "*.png"), fps=5) as src:
        assert src.meta["fps"] == 5 and src.meta["frames"] == 5 and src.meta["shape"] == (48, 64, 3)


def test_corrupt_and_missing_video(tmp_path: Path) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(SourceError, match="broken.mp4") as e:
        open_source(str(bad)).open()
    assert "corrupt" in str(e.value) or "no frame" in str(e.value)
    with pytest.raises(SourceError, match="does not exist"):
        open_source(f"file://{tmp_path}/nothing.mp4")


def test_empty_folder_and_corrupt_image(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="contains no images"):
        open_source(f"file://{tmp_path}")
    (tmp_path / "a.png").write_bytes(b"not a png at all")
    with pytest.raises(SourceError, match="cannot decode image"):
        open_source(f"file://{tmp_path}").open()
