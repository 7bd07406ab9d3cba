"""Video from files: a clip (``file://clip.mp4``) or a folder/glob of images (``file://frames/*.png``).

File sources deliver every frame (``live`` is False); ``realtime=True`` paces them at the clip's
frame rate (or ``fps=``) like a camera; ``loop=True`` starts over at the end (demos).
Frames are BGR uint8 arrays (H×W×3); each item's meta has ``frame`` (index) and ``pts`` (seconds).
Frames of a damaged clip that cannot be decoded are skipped and counted (``stats.decode_errors``;
the next item's meta has ``gap``), never silently taken for the end of the clip.
"""

from __future__ import annotations

import glob
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from sdk.errors import SourceError
from sdk.sources.base import BaseSource
from sdk.sources.common import Pacer, require_path
from sdk.sources.files import IMAGE_EXTENSIONS
from sdk.sources.uri import ParsedUri, bounded, optional, options

VIDEO_OPTIONS = {
    "realtime": (bool, False),
    "loop": (bool, False),
    "fps": (optional(bounded(float, 0.01, 1000.0)), None),   # images: pacing rate (default 30); clips: overrides the file's
}

Entry = tuple[Any, float | None, Mapping[str, Any] | None]
MAX_UNDECODABLE = 10_000  # consecutive undecodable frames after which a clip is given up
log = logging.getLogger(__name__)


class VideoFileSource(BaseSource):
    """Every frame of a clip, decoded with OpenCV (FFmpeg)."""

    kind = "video"

    def __init__(self, uri: str, path: Path, *, realtime: bool = False, loop: bool = False,
                 fps: float | None = None) -> None:
        super().__init__(uri, live=False, path=str(path))
        self.path, self.realtime, self.loop, self._fps = path, realtime, loop, fps
        self._cap: Any = None

    def _open(self) -> None:
        import cv2

        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            cap.release()
            raise SourceError(self.uri, f"cannot decode {self.path.name} (corrupt file or unsupported codec)",
                              "re-encode it, e.g. ffmpeg -i in -c:v mpeg4 out.mp4, or use a folder of images")
        ok, frame = cap.read()
        if not ok or frame is None:
            cap.release()
            raise SourceError(self.uri, f"{self.path.name} opens but no frame can be decoded",
                              "the file is truncated or its codec is missing from OpenCV's FFmpeg")
        fps = self._fps or cap.get(cv2.CAP_PROP_FPS) or 30.0
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self._meta.update(fps=float(fps), shape=tuple(frame.shape), frames=count if count > 0 else None)
        self._cap, self._first = cap, frame

    def _close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def _items(self) -> Iterator[Entry]:
        fps = float(self._meta["fps"])
        pacer = Pacer(fps, self.realtime, self._closed)
        index, frame, gap = 0, self._first, 0
        while frame is not None and not self._closed.is_set():
            pacer.wait()
            yield frame, None, {"frame": index, "pts": index / fps, **({"gap": gap} if gap else {})}
            index += 1
            if self._cap is None:
                return
            frame, skipped = self._next_frame(index)
            index, gap = (0, 0) if skipped < 0 else (index + skipped, skipped)

    def _next_frame(self, index: int) -> tuple[Any, int]:
        """The next decodable frame and how many undecodable frames were skipped before it (-1: the
        clip restarted with ``loop``). A read failure before the end the container declares is a
        damaged frame: it is counted (``stats.decode_errors``, ``gaps``) and decoding goes on."""
        import cv2

        cap, total = self._cap, self._meta.get("frames")
        failed = 0
        while not self._closed.is_set():
            ok, frame = cap.read()
            if ok and frame is not None:
                if failed:
                    self.stats.decode_errors += failed
                    self.stats.gaps += 1
                    log.warning("%s: %d frame(s) before frame %d could not be decoded (damaged file?)",
                                self.uri, failed, index + failed)
                return frame, failed
            failed += 1
            if total is None or index + failed >= total or failed > MAX_UNDECODABLE:
                break
        if total is not None and index < total:  # the declared frames that never came
            self.stats.decode_errors += total - index
            log.warning("%s: the last %d of %d frames could not be decoded (truncated or damaged file)",
                        self.uri, total - index, total)
        if self.loop and index > 0 and not self._closed.is_set():
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = cap.read()
            return (frame, -1) if ok else (None, 0)
        return None, 0


def image_paths(uri: str, target: str) -> list[Path]:
    """The images named by a folder or glob, sorted by name."""
    if any(c in target for c in "*["):
        paths = [Path(p) for p in sorted(glob.glob(target, recursive=True))]
        where = f"glob {target}"
    else:
        folder = require_path(uri, target, "folder")
        paths = sorted(p for p in folder.iterdir()) if folder.is_dir() else [folder]
        where = f"folder {folder}"
    images = [p for p in paths if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    if not images:
        raise SourceError(uri, f"{where} contains no images",
                          f"supported image types: {', '.join(IMAGE_EXTENSIONS)}")
    return images


class ImageSequenceSource(BaseSource):
    """Images from a folder or glob, in name order; an unreadable image raises ``SourceError``."""

    kind = "images"

    def __init__(self, uri: str, paths: list[Path], *, realtime: bool = False, loop: bool = False,
                 fps: float | None = None) -> None:
        super().__init__(uri, live=False, fps=fps or 30.0, frames=len(paths))
        self.paths, self.realtime, self.loop = paths, realtime, loop

    def _open(self) -> None:
        self._meta["shape"] = tuple(self._read(self.paths[0]).shape)

    def _read(self, path: Path) -> Any:
        import cv2
        import numpy as np

        try:
            data = np.fromfile(path, dtype=np.uint8)
        except OSError as e:
            raise SourceError(self.uri, f"cannot read {path}: {e.strerror}", "check permissions") from None
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if image is None:
            raise SourceError(self.uri, f"cannot decode image {path}", "the file is corrupt; remove it")
        return image

    def _items(self) -> Iterator[Entry]:
        fps = float(self._meta["fps"])
        pacer = Pacer(fps, self.realtime, self._closed)
        while True:
            for index, path in enumerate(self.paths):
                if self._closed.is_set():
                    return
                image = self._read(path)
                pacer.wait()
                yield image, None, {"frame": index, "pts": index / fps, "path": str(path)}
            if not self.loop:
                return


def open_video_file(parsed: ParsedUri, kwargs: Mapping[str, Any]) -> BaseSource:
    """A clip, a single image, a folder or a glob of images (called by the ``file://`` dispatcher)."""
    opts = options(parsed, kwargs, VIDEO_OPTIONS)
    target = parsed.target
    if any(c in target for c in "*[") or Path(target).is_dir() or Path(target).suffix.lower() in IMAGE_EXTENSIONS:
        return ImageSequenceSource(parsed.uri, image_paths(parsed.uri, target), **opts)
    return VideoFileSource(parsed.uri, require_path(parsed.uri, target), **opts)
