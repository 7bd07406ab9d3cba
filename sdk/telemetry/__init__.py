"""Drift telemetry: per-frame statistics, drift against a reference profile, and store-and-forward
publishing over MQTT (``ember/<fleet>/<device>/{status,telemetry,drift,events,cmd}``).

Names are imported lazily, so ``import sdk.telemetry.spool`` stays light (no numpy)."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Telemetry": "core", "DriftDetector": "drift", "Thresholds": "drift", "chi_square": "drift",
    "ks_binned": "drift", "psi": "drift", "FeatureExtractor": "features", "feature_names": "features",
    "parse_output": "features", "ReferenceProfile": "profile", "build_reference_profile": "profile",
    "embed_in_manifest": "profile", "TelemetrySettings": "settings", "TelemetrySink": "sink", "Spool": "spool",
    "read_messages": "spool", "verify": "spool",
}
__all__ = [  # noqa: RUF022 - grouped by module
    "Telemetry", "DriftDetector", "Thresholds", "chi_square", "ks_binned", "psi", "FeatureExtractor",
    "feature_names", "parse_output", "ReferenceProfile", "build_reference_profile", "embed_in_manifest",
    "TelemetrySettings", "TelemetrySink", "Spool", "read_messages", "verify",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sdk.telemetry' has no attribute {name!r}")
    return getattr(importlib.import_module(f"sdk.telemetry.{module}"), name)
