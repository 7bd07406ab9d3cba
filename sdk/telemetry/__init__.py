"""Drift telemetry: per-frame statistics, drift against a reference profile, and store-and-forward
publishing over MQTT (``ember/<fleet>/<device>/{status,telemetry,drift,events,cmd}``)."""

from sdk.telemetry.core import Telemetry
from sdk.telemetry.drift import DriftDetector, Thresholds, chi_square, ks_binned, psi
from sdk.telemetry.features import FeatureExtractor, feature_names, parse_output
from sdk.telemetry.profile import ReferenceProfile, build_reference_profile, embed_in_manifest
from sdk.telemetry.settings import TelemetrySettings
from sdk.telemetry.sink import TelemetrySink
from sdk.telemetry.spool import Spool, read_messages, verify

__all__ = [
    "DriftDetector", "FeatureExtractor", "ReferenceProfile", "Spool", "Telemetry", "TelemetrySettings",
    "TelemetrySink", "Thresholds", "build_reference_profile", "chi_square", "embed_in_manifest",
    "feature_names", "ks_binned", "parse_output", "psi", "read_messages", "verify",
]
