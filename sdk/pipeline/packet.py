"""What flows through a pipeline: ``Stage`` (a named function), ``Packet`` (an item and its
result) and ``StopPipeline`` (raise it to end a run cleanly)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sdk.sources.base import Item


class StopPipeline(Exception):
    """Raise from a stage or sink to end the pipeline cleanly (stop reason ``"stop"``, no error)."""


@dataclass(frozen=True)
class Stage:
    """A named step ``fn(value) -> value``; the first stage receives ``item.data``.

    ``policy``/``queue_size`` override the pipeline's for this stage's input queue.
    """

    name: str
    fn: Callable[[Any], Any]
    policy: str | None = None
    queue_size: int | None = None


@dataclass(eq=False)
class Packet:
    """What flows through the pipeline and reaches the sinks."""

    item: Item
    value: Any
    timings: dict[str, float] = field(default_factory=dict)  # stage name -> ms
    latency_ms: float = float("nan")  # source timestamp -> handed to the sinks


def sink_name(sink: Any) -> str:
    return "sink:" + str(getattr(sink, "name", None) or type(sink).__name__)
