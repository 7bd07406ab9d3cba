"""Streaming inputs behind one URI scheme: ``open_source("v4l2:///dev/video0")``."""

from sdk.sources.base import BaseSource, Item, Source, SourceStats
from sdk.sources.registry import open_source, register_scheme, schemes

__all__ = ["BaseSource", "Item", "Source", "SourceStats", "open_source", "register_scheme", "schemes"]
