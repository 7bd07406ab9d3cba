"""Ember's one vocabulary of precision tiers and runtime backends.

Every place that names a tier or a backend imports it from here: the manifest schema, the model
manager (``pin``, rules' ``max_tier``), remote telemetry commands, ``ember optimize`` and the CLI's
choices. A tier is a precision, optionally prefixed by ``prunedNN-`` (NN = 0..99 % of weights
pruned)::

    from sdk.vocab import BACKENDS, parse_tier, tier_problem
    parse_tier("pruned5-int8")          # Tier(precision='int8', pruned=5)
    tier_problem("int4")                # "tier 'int4' is not a tier name (fp32, fp16, ...)"
    backend_problem("tensorrt")         # "backend 'tensorrt' is not one of onnxruntime, litert, tinygrad"

``*_problem`` functions return a one-line message (or None) so each caller raises its own typed
error; ``check_tier``/``check_backend`` raise ``ModelError``/``BackendError`` directly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Any

from sdk.errors import BackendError, ModelError


class Precision(str, Enum):
    """Numeric precision of a variant (quality order: ``QUALITY``)."""

    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"
    INT8_DYNAMIC = "int8-dynamic"
    INT8_MIXED = "int8-mixed"


class Backend(str, Enum):
    """A runtime that loads and runs model files (one module each in ``sdk/runtime/backends``)."""

    ONNXRUNTIME = "onnxruntime"
    LITERT = "litert"
    TINYGRAD = "tinygrad"


PRECISIONS: tuple[str, ...] = tuple(p.value for p in Precision)
BACKENDS: tuple[str, ...] = tuple(b.value for b in Backend)
FILE_SUFFIX: dict[str, str] = {"onnxruntime": ".onnx", "litert": ".tflite", "tinygrad": ".onnx"}
# nominal quality of each precision (higher is better), used when variants have no accuracy metric
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")  # int8 calibration (ember optimize --method)
QUALITY: dict[str, float] = {"fp32": 100.0, "fp16": 90.0, "int8-mixed": 80.0, "int8": 70.0, "int8-dynamic": 60.0}

_PRECISION_ALT = "|".join(sorted((re.escape(p) for p in PRECISIONS), key=len, reverse=True))
TIER_PATTERN = rf"^(?:pruned([0-9]{{1,2}})-)?({_PRECISION_ALT})\Z"  # \Z: no trailing newline
TIER_RE = re.compile(TIER_PATTERN)
TIER_HELP = f"{', '.join(PRECISIONS)}, optionally prefixed prunedNN- (NN = 0..99, e.g. pruned50-int8)"


@dataclass(frozen=True)
class Tier:
    precision: str
    pruned: int | None = None

    def __str__(self) -> str:
        return self.precision if self.pruned is None else f"pruned{self.pruned}-{self.precision}"

    @property
    def quality(self) -> float:
        """Nominal quality: the precision's, lowered by a tenth of a point per pruned percent."""
        return QUALITY[self.precision] - (self.pruned or 0) / 10.0


def tier_problem(value: Any) -> str | None:
    """Why ``value`` is not a tier name, or None when it is one."""
    if isinstance(value, str) and TIER_RE.match(value):
        return None
    return f"tier {value!r:.60} is not a tier name ({TIER_HELP})"


def parse_tier(value: str) -> Tier:
    """``"pruned50-int8"`` → ``Tier("int8", 50)``; raises ``ModelError`` for anything else."""
    m = TIER_RE.match(value) if isinstance(value, str) else None
    if m is None:
        raise ModelError(str(tier_problem(value)))
    return Tier(m.group(2), int(m.group(1)) if m.group(1) is not None else None)


def check_tier(value: Any) -> str:
    """``value`` if it is a tier name; else ``ModelError``."""
    parse_tier(value)
    return str(value)


def base_tier(tier: str) -> str:
    """``pruned50-int8`` → ``int8``; ``fp16`` → ``fp16`` (an unknown name is returned unchanged)."""
    m = TIER_RE.match(tier)
    return m.group(2) if m else tier


def backend_problem(value: Any) -> str | None:
    """Why ``value`` is not a backend name, or None when it is one."""
    if isinstance(value, str) and value in BACKENDS:
        return None
    return f"backend {value!r:.60} is not one of {', '.join(BACKENDS)}"


def check_backend(value: Any) -> str:
    """``value`` if it is a backend name; else ``BackendError`` listing the known ones."""
    problem = backend_problem(value)
    if problem:
        raise BackendError(f"unknown {problem}")
    return str(value)


def tier_arg(text: str) -> str:
    """``argparse`` ``type=`` for a tier option: a clear usage error for a bad name."""
    import argparse

    if problem := tier_problem(text):
        raise argparse.ArgumentTypeError(problem)
    return text
