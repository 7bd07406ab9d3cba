"""Generated C, compiled with gcc and clang (-std=c99 -Wall -Wextra -Werror), is bit-exact with LiteRT."""

from __future__ import annotations

import json

import pytest

import firmware_export
from firmware_export.lower import KERNEL_OPS
from firmware_export.tflite_model import load

MODELS = ["tiny_convnet", "dscnn", "conv1d", "flatten", "rows"]


def test_models_cover_every_kernel(int8_models):
    ops = {op.code for p in int8_models.values() for op in load(p).ops}
    # QUANTIZE (int8 -> int8 requantize) and PADV2 share the kernels of RELU and PAD; MUL and SUB have
    # their own model in test_ops.py.
    assert KERNEL_OPS - {"QUANTIZE", "PADV2", "MUL", "SUB"} <= ops
    assert "RESHAPE" in ops


@pytest.mark.parametrize("cc", ["gcc", "clang"])
@pytest.mark.parametrize("name", MODELS)
def test_bit_exact_with_litert(exported, int8_models, name, cc, need):
    need(cc)
    res = firmware_export.verify_host(exported[name], int8_models[name], n=1000, cc=cc)
    assert res["inputs"] == 1000
    assert res["max_abs_diff"] == 0, res
    assert res["mismatched_inputs"] == 0


def test_footprint_report(exported):
    fp = json.loads((exported["dscnn"] / "footprint.json").read_text())
    assert fp["arena_bytes"] > 0 and fp["arena_bytes"] <= fp["unplanned_arena_bytes"]
    assert fp["flash_bytes"] > fp["weight_bytes"] > 0
    assert fp["ram_bytes"] >= fp["arena_bytes"]
    assert [ly["op"] for ly in fp["layers"]][:2] == ["CONV_2D", "DEPTHWISE_CONV_2D"]
    assert sum(ly["weight_bytes"] for ly in fp["layers"]) == fp["weight_bytes"]
    assert all(ly["arena_live_bytes"] <= fp["arena_bytes"] for ly in fp["layers"])


def test_output_folder_is_a_library(exported):
    d = exported["tiny_convnet"]
    for f in ("library.properties", "Makefile", "CMakeLists.txt", "README.md", "main.c",
              "src/tiny_convnet_model.h", "src/tiny_convnet_model.c", "src/ember_nn.c", "src/ember_nn.h",
              "tflm/model_data.h", "tflm/model_data.c", "mcu/startup.c", "mcu/mps2.ld",
              "examples/tiny_convnet_model_demo/tiny_convnet_model_demo.ino"):
        assert (d / f).is_file(), f
    header = (d / "src/tiny_convnet_model.h").read_text()
    assert "int tiny_convnet_model_invoke(const int8_t *input, int8_t *output);" in header
    assert "TINY_CONVNET_MODEL_INPUT_SCALE" in header and "TINY_CONVNET_MODEL_OUTPUT_ZERO_POINT" in header
    readme = (d / "README.md").read_text()
    for tool in ("arduino-cli", "PlatformIO", "STM32CubeIDE", "west"):
        assert tool in readme
    assert "malloc" not in (d / "src/ember_nn.c").read_text()


def test_example_runs_with_make(exported, tmp_path, need):
    need("make")
    import shutil
    import subprocess

    d = tmp_path / "proj"
    shutil.copytree(exported["dscnn"], d)
    proc = subprocess.run(["make", "-s", "run", "CFLAGS=-std=c99 -O1 -Wall -Wextra -Werror"], cwd=d,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "matches the LiteRT reference" in proc.stdout
