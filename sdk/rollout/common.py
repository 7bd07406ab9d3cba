"""What the rollout modules share: the version rule, the event callback and durable file operations.

Versions are 1 to 4 dot-separated non-negative integers (``1``, ``1.2``, ``1.2.3``, ``1.2.3.4``, no
leading zeros), compared numerically with missing parts as 0: ``1.2 == 1.2.0 < 1.2.1 < 1.10``.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sdk.errors import RolloutRejected
from sdk.events import default_bus
from sdk.models.schema import VERSION_PATTERN

Emit = Callable[..., Any]  # emit(kind, **data), e.g. EventBus.publish
VERSION_RE = re.compile(VERSION_PATTERN)


def parse_version(version: Any) -> tuple[int, int, int, int]:
    """``"1.2"`` → ``(1, 2, 0, 0)``; anything else raises ``RolloutRejected("bad_version", ...)``."""
    if not isinstance(version, str) or not VERSION_RE.match(version):
        raise RolloutRejected("bad_version", f"version {str(version)[:40]!r} is not 1 to 4 dotted integers "
                              "like 1.2.3; set it with --version or the manifest's \"version\"")
    parts = [int(p) for p in version.split(".")]
    return (parts + [0, 0, 0])[:4]  # type: ignore[return-value]


def is_newer(version: str, than: str | None) -> bool:
    """True when ``version`` is strictly greater than ``than`` (always when ``than`` is None)."""
    return than is None or parse_version(version) > parse_version(than)


def emitter(emit: Emit | None) -> Emit:
    """The callback to use: ``emit`` or, by default, the process's event bus (which telemetry forwards)."""
    return emit if emit is not None else default_bus.publish


def reject(emit: Emit | None, reason: str, message: str, **data: Any) -> RolloutRejected:
    """Publish ``rollout.rejected`` and return the error to raise."""
    emitter(emit)("rollout.rejected", level="error", reason=reason, message=message,
                  **{k: v for k, v in data.items() if v is not None})
    return RolloutRejected(reason, message)


def fsync_path(path: Path) -> None:
    """fsync a file or a directory (so a rename or a new entry in it survives a power cut)."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file and directory under ``root`` (files first, then the directories, deepest first)."""
    dirs = []
    for here, _subdirs, files in os.walk(root):
        dirs.append(Path(here))
        for name in files:
            fsync_path(Path(here) / name)
    for d in reversed(dirs):
        fsync_path(d)


def write_durable(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and durably: temp file, fsync, rename, fsync the folder."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_path(path.parent)


def check_model(folder: Path, emit: Emit | None = None, deployment: str | None = None) -> None:
    """``folder`` must load as a model (``ModelStore``) with at least one usable variant on this device."""
    from sdk.errors import ModelError
    from sdk.models.store import ModelStore

    try:
        store = ModelStore(folder)
    except ModelError as e:
        raise reject(emit, "manifest_invalid", str(e), deployment=deployment) from None
    if not store.usable():
        problems = "; ".join(f"{v.tier}/{v.backend}: {v.problem}" for v in store.manifest.variants)
        raise reject(emit, "model_invalid", f"no usable variant on this device ({problems or 'none listed'})",
                     deployment=deployment)
