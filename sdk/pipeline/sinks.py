"""Where pipeline results go. A sink has ``open()``, ``write(packet)`` and ``close()``; all are
called from the pipeline's sink thread (``open``/``close`` from the thread running the pipeline).

``JsonlSink`` (one JSON object per item), ``VideoSink`` (mp4 with overlays), ``DisplaySink``
(a window, when there is a screen) and ``CallbackSink`` (your function).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable

import numpy as np

from sdk.errors import PipelineError
from sdk.pipeline.overlay import as_bgr_frame, draw_overlay
from sdk.pipeline.packet import Packet, StopPipeline
from sdk.util.jsonutil import dumps

DrawFn = Callable[[np.ndarray, Packet], "np.ndarray | None"]


@runtime_checkable
class Sink(Protocol):
    name: str

    def open(self) -> None: ...

    def write(self, packet: Packet) -> None: ...

    def close(self) -> None: ...


class BaseSink:
    """No-op ``open``/``close``, a ``name`` (the class name unless given) and a context manager."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name or type(self).__name__

    def open(self) -> None:
        pass

    def write(self, packet: Packet) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> BaseSink:  # noqa: PYI034
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class JsonlSink(BaseSink):
    """One line per item: ``{"seq", "timestamp", "latency_ms", "timings", "value"}``.

    ``target`` is a path (created, parent folders too; closed at the end) or an open text file
    (flushed, left open). ``flush=True`` flushes every line (for ``tail -f``).
    """

    def __init__(self, target: str | os.PathLike[str] | IO[str], flush: bool = False,
                 name: str | None = None) -> None:
        super().__init__(name)
        self.target = target
        self.flush = flush
        self._file: IO[str] | None = None
        self._owned = False
        self.written = 0

    def open(self) -> None:
        if isinstance(self.target, (str, os.PathLike)):
            path = Path(self.target)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
            except OSError as e:
                raise PipelineError(f"sink:{self.name}", f"cannot write {path}: {e.strerror}") from None
            self._owned = True
        else:
            self._file = self.target

    def write(self, packet: Packet) -> None:
        if self._file is None:
            raise PipelineError(f"sink:{self.name}", "write() before open()")
        record = {"seq": packet.item.seq, "timestamp": packet.item.timestamp,
                  "latency_ms": packet.latency_ms, "timings": packet.timings, "value": packet.value}
        self._file.write(dumps(record, separators=(",", ":")) + "\n")
        self.written += 1
        if self.flush:
            self._file.flush()

    def close(self) -> None:
        if self._file is None:
            return
        if self._owned:
            self._file.close()
        else:
            self._file.flush()
        self._file = None


class VideoSink(BaseSink):
    """Write the source frames, with ``packet.value`` drawn on them, to a video file.

    ``draw(frame, packet)`` draws on a copy of the frame (return a new frame or None);
    the default writes the result as text (see ``overlay.describe_value``). The writer opens on the
    first frame (its size fixes the video's; later frames are resized to it); ``fps`` defaults to
    the source's ``meta["fps"]`` or 30. ``fourcc`` ``mp4v`` suits ``.mp4``; ``MJPG`` suits ``.avi``.
    """

    def __init__(self, path: str | os.PathLike[str], draw: DrawFn | None = None, fps: float | None = None,
                 fourcc: str = "mp4v", name: str | None = None) -> None:
        super().__init__(name)
        self.path = Path(path)
        self.draw = draw or draw_overlay
        self.fps = fps
        self.fourcc = fourcc
        self._writer: Any = None
        self._size: tuple[int, int] | None = None
        self.written = 0

    def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise PipelineError(f"sink:{self.name}", f"cannot create {self.path.parent}: {e.strerror}") from None

    def write(self, packet: Packet) -> None:
        import cv2

        frame = as_bgr_frame(packet.item.data, f"sink:{self.name}")
        drawn = self.draw(frame, packet)
        frame = frame if drawn is None else as_bgr_frame(drawn, f"sink:{self.name} draw()")
        if self._writer is None:
            self._open_writer(frame, packet)
        h, w = frame.shape[:2]
        if (w, h) != self._size:
            frame = cv2.resize(frame, self._size)
        self._writer.write(frame)
        self.written += 1

    def _open_writer(self, frame: np.ndarray, packet: Packet) -> None:
        import cv2

        fps = float(self.fps or packet.item.meta.get("fps") or 30.0)
        h, w = frame.shape[:2]
        writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*self.fourcc), fps, (w, h))
        if not writer.isOpened():
            raise PipelineError(f"sink:{self.name}", f"cannot write video {self.path} with codec "
                                f"{self.fourcc!r} (use mp4v with .mp4 or MJPG with .avi)")
        self._writer, self._size = writer, (w, h)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None


def have_screen(env: dict[str, str] | None = None) -> bool:
    """True when ``DISPLAY`` or ``WAYLAND_DISPLAY`` is set."""
    env = dict(os.environ) if env is None else env
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


class DisplaySink(BaseSink):
    """Show the frames with overlays in an OpenCV window; ``q`` or Esc in the window ends the pipeline.

    Needs a screen (``DISPLAY``/``WAYLAND_DISPLAY``) and an OpenCV with GUI support
    (``opencv-python``, not ``-headless``); ``open()`` says which one is missing.
    """

    def __init__(self, title: str = "ember", draw: DrawFn | None = None, name: str | None = None) -> None:
        super().__init__(name)
        self.title = title
        self.draw = draw or draw_overlay
        self._open = False

    def open(self) -> None:
        import cv2

        label = f"sink:{self.name}"
        if not have_screen():
            raise PipelineError(label, "no screen: neither DISPLAY nor WAYLAND_DISPLAY is set "
                                "(write a video file with VideoSink / --video-out instead)")
        try:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL)
        except cv2.error as e:
            raise PipelineError(label, "this OpenCV has no GUI support (opencv-python-headless?): "
                                f"pip install opencv-python, or use VideoSink ({str(e).strip()[:120]})") from None
        self._open = True

    def write(self, packet: Packet) -> None:
        import cv2

        frame = as_bgr_frame(packet.item.data, f"sink:{self.name}")
        drawn = self.draw(frame, packet)
        cv2.imshow(self.title, frame if drawn is None else drawn)
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            raise StopPipeline("closed by the user")

    def close(self) -> None:
        if self._open:
            import cv2

            cv2.destroyWindow(self.title)
            self._open = False


class CallbackSink(BaseSink):
    """Call ``fn(packet)`` for every item (named after ``fn`` unless ``name`` is given)."""

    def __init__(self, fn: Callable[[Packet], Any], name: str | None = None) -> None:
        super().__init__(name or f"callback:{getattr(fn, '__name__', type(fn).__name__)}")
        self.fn = fn

    def write(self, packet: Packet) -> None:
        self.fn(packet)
