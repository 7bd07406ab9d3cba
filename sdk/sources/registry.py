"""``open_source(uri)``: one function from a URI to a Source. Schemes map to lazily imported classes."""

from __future__ import annotations

import importlib
from typing import Any

from sdk.errors import SourceError
from sdk.sources.base import Source
from sdk.sources.uri import parse_uri

# scheme -> "module:factory"; the factory is called as factory(uri, **opts).
_SCHEMES: dict[str, str] = {
    "file": "sdk.sources.files:open_file",
    "v4l2": "sdk.sources.camera:open_camera",
    "csi": "sdk.sources.camera:open_camera",
    "rtsp": "sdk.sources.camera:open_camera",
    "rtsps": "sdk.sources.camera:open_camera",
    "http": "sdk.sources.camera:open_camera",
    "https": "sdk.sources.camera:open_camera",
    "mic": "sdk.sources.audio:open_mic",
    "serial": "sdk.sources.sensors:open_serial",
    "csv": "sdk.sources.sensors:open_csv",
    "wfdb": "sdk.sources.sensors:open_wfdb",
    "synthetic": "sdk.sources.synthetic:open_synthetic",
}


def register_scheme(scheme: str, target: str) -> None:
    """Make ``scheme://`` URIs open with ``target`` ("package.module:callable")."""
    _SCHEMES[scheme] = target


def schemes() -> list[str]:
    return sorted(_SCHEMES)


def open_source(uri: str, **opts: Any) -> Source:
    """Create (not yet open) the source for ``uri``; raises ``SourceError`` for anything unusable."""
    if not isinstance(uri, str) or not uri.strip():
        raise SourceError(str(uri), "empty source URI", "give e.g. file://clip.mp4 or v4l2:///dev/video0")
    scheme = _scheme_of(uri)
    target = _SCHEMES.get(scheme)
    if target is None:
        raise SourceError(uri, f"unknown scheme {scheme!r}", f"supported: {', '.join(schemes())}")
    module_name, _, attr = target.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except ImportError as e:
        raise SourceError(uri, f"support for {scheme}:// is not installed ({e.name} missing)",
                          "pip install 'ember-edge[all]'") from None
    return factory(uri, **opts)


def _scheme_of(uri: str) -> str:
    return parse_uri(uri).scheme
