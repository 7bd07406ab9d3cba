"""Export int8 TFLite models to C for microcontrollers.

``export(model, out_dir, target=..., name=...)`` writes standalone C99 inference code (static
arena planned at export time, kernels bit-exact with LiteRT's reference int8 kernels) and a
TensorFlow Lite Micro model array; ``verify_host`` / ``verify_qemu`` check the result.
"""

from firmware_export.exporter import ExportResult, export, verify_host, verify_qemu
from firmware_export.targets import TARGETS

__all__ = ["TARGETS", "ExportResult", "export", "verify_host", "verify_qemu"]
