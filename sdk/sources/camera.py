"""Live video: ``v4l2:///dev/video0`` (or ``0``), ``csi://0`` (GStreamer), ``rtsp://…``, ``http://…``.

Frames are grabbed in a thread (``LiveSource``); only the newest ``buffer`` frames are kept.
The capture backend is injectable: ``capture_factory()`` returns an object with
``read() -> (ok, frame)``, ``release()`` and ``isOpened()`` (like ``cv2.VideoCapture``).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sdk.errors import SourceError
from sdk.sources.live import LIVE_OPTIONS, Disconnected, Entry, LiveSource, stamp
from sdk.sources.uri import ParsedUri, bounded, optional, options, parse_uri

CaptureFactory = Callable[[], Any]

CAMERA_OPTIONS = {
    **LIVE_OPTIONS,
    "width": (optional(bounded(int, 1, 16384)), None),
    "height": (optional(bounded(int, 1, 16384)), None),
    "fps": (optional(bounded(float, 0.01, 1000.0)), None),
    "platform": (str, "auto"),   # csi:// only: jetson | libcamera | auto
    "flip": (bounded(int, 0, 7), 0),            # csi:// on Jetson: nvvidconv flip-method
}


@functools.lru_cache(maxsize=1)
def opencv_has_gstreamer() -> bool:
    """Whether the installed OpenCV was built with GStreamer (needed for ``csi://``)."""
    try:
        import cv2
    except ImportError:
        return False
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GStreamer:"):
            return "YES" in line.split(":", 1)[1].upper()
    return False


def is_jetson() -> bool:
    if Path("/etc/nv_tegra_release").exists():
        return True
    try:
        return "jetson" in Path("/proc/device-tree/model").read_text(errors="replace").lower()
    except OSError:
        return False


def csi_pipeline(sensor: int = 0, width: int = 1280, height: int = 720, fps: float = 30,
                 platform: str = "auto", flip: int = 0) -> str:
    """The GStreamer pipeline for a CSI camera: ``nvarguscamerasrc`` on Jetson, ``libcamerasrc``
    on a Raspberry Pi. Ends in an ``appsink`` that keeps only the newest frame (BGR)."""
    if platform == "auto":
        platform = "jetson" if is_jetson() else "libcamera"
    rate = f"{round(fps)}/1"
    sink = "videoconvert ! video/x-raw, format=BGR ! appsink drop=true max-buffers=1 sync=false"
    if platform == "jetson":
        return (f"nvarguscamerasrc sensor-id={sensor} ! video/x-raw(memory:NVMM), width={width}, "
                f"height={height}, framerate={rate} ! nvvidconv flip-method={flip} ! "
                f"video/x-raw, format=BGRx ! {sink}")
    if platform == "libcamera":
        return (f"libcamerasrc ! video/x-raw, width={width}, height={height}, framerate={rate} ! {sink}")
    raise ValueError(f"unknown CSI platform {platform!r} (jetson, libcamera or auto)")


def _default_factory(parsed: ParsedUri, opts: dict[str, Any]) -> CaptureFactory:
    import cv2

    scheme, target = parsed.scheme, parsed.target
    if scheme == "csi":
        if not opencv_has_gstreamer():
            raise SourceError(parsed.uri, "this OpenCV build has no GStreamer support, which csi:// needs",
                              "install the distribution's OpenCV (apt install python3-opencv) or build "
                              "OpenCV with -DWITH_GSTREAMER=ON; `ember devices` shows what is available")
        try:
            pipeline = csi_pipeline(int(target or 0), opts["width"] or 1280, opts["height"] or 720,
                                    opts["fps"] or 30, opts["platform"], opts["flip"])
        except ValueError as e:
            raise SourceError(parsed.uri, str(e), "write csi://0?platform=jetson") from None
        return lambda: cv2.VideoCapture(pipeline, cv2.CAP_GSTREAMER)
    if scheme == "v4l2":
        device: int | str = int(target) if target.isdigit() else target
        if isinstance(device, str) and not os.path.exists(device):
            raise SourceError(parsed.uri, f"no camera device {device}",
                              "list cameras with `ember devices`; use v4l2:///dev/video0 or 0")

        def open_v4l2() -> Any:
            cap = cv2.VideoCapture(device, cv2.CAP_V4L2)
            for prop, name in ((cv2.CAP_PROP_FRAME_WIDTH, "width"), (cv2.CAP_PROP_FRAME_HEIGHT, "height"),
                               (cv2.CAP_PROP_FPS, "fps")):
                if opts[name]:
                    cap.set(prop, opts[name])
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
            return cap

        return open_v4l2

    def open_stream() -> Any:
        cap = cv2.VideoCapture(parsed.uri, cv2.CAP_FFMPEG)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        return cap

    return open_stream


class CameraSource(LiveSource):
    """A camera or network stream; items are BGR uint8 frames (H×W×3)."""

    kind = "camera"

    def __init__(self, uri: str, capture_factory: CaptureFactory, *, fps: float | None = None,
                 **live: Any) -> None:
        super().__init__(uri, fps=fps, **live)
        self.capture_factory = capture_factory

    def _connect(self) -> Any:
        try:
            cap = self.capture_factory()
        except SourceError:
            raise
        except Exception as e:  # noqa: BLE001 - any backend failure is "cannot open"
            raise SourceError(self.uri, f"cannot open the camera: {e}", "check `ember devices`") from None
        if cap is None or not cap.isOpened():
            if cap is not None:
                cap.release()
            raise SourceError(self.uri, "cannot open the camera or stream",
                              "check that it is connected and not in use (`ember devices` lists cameras)")
        return cap

    def _grab(self, conn: Any) -> Entry | None:
        ok, frame = conn.read()
        if not ok or frame is None:
            raise Disconnected("no frame")
        ts = stamp()
        if "shape" not in self._meta:
            self._meta["shape"] = tuple(frame.shape)
        return frame, ts, None

    def _release(self, conn: Any) -> None:
        conn.release()


def open_camera(uri: str, **kwargs: Any) -> CameraSource:
    """``open_source`` factory for ``v4l2``, ``csi``, ``rtsp``, ``rtsps`` and ``http(s)`` URIs."""
    parsed = parse_uri(uri)
    if parsed.scheme in ("http", "https", "rtsp", "rtsps"):
        parsed = ParsedUri(uri, parsed.scheme, parsed.target, {})  # the query belongs to the server
    opts = options(parsed, kwargs, CAMERA_OPTIONS, passthrough=("capture_factory",))
    factory = opts.pop("capture_factory") or _default_factory(parsed, opts)
    live = {k: opts[k] for k in LIVE_OPTIONS}
    return CameraSource(uri, factory, fps=opts["fps"], **live)
