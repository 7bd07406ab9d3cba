"""Ember: deep learning on small devices.

The core imports nothing heavy; runtimes, audio and MQTT are loaded when used.
"""

from sdk.errors import EmberError, ModelError, PipelineError, SourceError, TelemetryError

__version__ = "0.1.0"

__all__ = ["EmberError", "ModelError", "PipelineError", "SourceError", "TelemetryError", "__version__"]
