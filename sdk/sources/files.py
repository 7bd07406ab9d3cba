"""``file://`` (and bare paths): picks the source by what the path names.

Clips (.mp4, .avi, …) → ``VideoFileSource``; images, folders and globs → ``ImageSequenceSource``;
sound files (.wav, .flac, …) → ``AudioFileSource``; ``.csv`` → ``CsvSource``; WFDB records
(``.hea``/``.dat``) → ``WfdbSource``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sdk.errors import SourceError
from sdk.sources.base import BaseSource
from sdk.sources.uri import parse_uri

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".au", ".caf", ".w64")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".mjpeg", ".wmv")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm")
SUPPORTED = (*VIDEO_EXTENSIONS, *IMAGE_EXTENSIONS, *AUDIO_EXTENSIONS, ".csv", ".hea")


def open_file(uri: str, **kwargs: Any) -> BaseSource:
    """``open_source`` factory for ``file://`` URIs and bare paths."""
    parsed = parse_uri(uri)
    target = parsed.target
    suffix = Path(target).suffix.lower()
    if any(c in target for c in "*[") or Path(target).is_dir() or suffix in (*VIDEO_EXTENSIONS, *IMAGE_EXTENSIONS):
        from sdk.sources.video import open_video_file

        return open_video_file(parsed, kwargs)
    if suffix in AUDIO_EXTENSIONS:
        from sdk.sources.audio import open_audio_file

        return open_audio_file(parsed, kwargs)
    if suffix == ".csv":
        from sdk.sources.sensors import csv_from

        return csv_from(parsed, kwargs)
    if suffix in (".hea", ".dat"):
        from sdk.sources.sensors import wfdb_from

        return wfdb_from(parsed, kwargs)
    if target and not Path(target).exists():
        raise SourceError(uri, f"file {target} does not exist", f"relative paths are taken from {Path.cwd()}")
    raise SourceError(uri, f"unsupported file type {suffix or '(no extension)'!r}",
                      f"supported: {' '.join(SUPPORTED)}, a folder of images or a glob")
