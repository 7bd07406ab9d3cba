"""Export a small int8 network to C for a Cortex-M4 and check it bit for bit against LiteRT.

    python examples/export_to_c.py

Builds a conv net, converts it to a full-int8 .tflite, writes the C project to example-c/,
compiles it on this machine and compares 200 random inputs with LiteRT's reference kernels.
"""

import numpy as np

import firmware_export as fx
from sdk.models.builtin import tiny_convnet
from sdk.optimize.tflite_export import onnx_to_tflite

rng = np.random.default_rng(0)
onnx_model = tiny_convnet("example-net.onnx", input_hw=(32, 32), channels=(8, 16))
calibration = [rng.random((1, 3, 32, 32), dtype=np.float32) for _ in range(32)]
tflite = onnx_to_tflite(onnx_model, "example-net.int8.tflite", int8=True, calibration=calibration)

result = fx.export(tflite, "example-c", target="cortex-m4", name="net", overwrite=True)
print(f"arena {result.arena_bytes} B, flash {result.flash_bytes} B, RAM {result.ram_bytes} B")
check = fx.verify_host("example-c", tflite, n=200)
print(f"host check: {check}")
assert check["max_abs_diff"] == 0
