"""Model optimization: precision tiers (fp16, int8 static/dynamic/mixed, LiteRT fp32/int8),
per-layer sensitivity, profiling and the Pareto report.

    from sdk.optimize import optimize, profile_model, onnx_to_tflite
"""

from sdk.optimize.profile import profile_model
from sdk.optimize.tflite_export import onnx_to_tflite
from sdk.optimize.toolchain import OptimizeResult, measure_folder, optimize

__all__ = ["OptimizeResult", "measure_folder", "onnx_to_tflite", "optimize", "profile_model"]
