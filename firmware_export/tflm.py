"""The TFLite Micro output: the model as an aligned C array, its op resolver and a checked arena size."""

from __future__ import annotations

import re
import subprocess
import sys

from firmware_export.codegen import c_float
from firmware_export.tflite_model import Model
from sdk.errors import ExportError

# Builtin op -> MicroMutableOpResolver method (the ops TFLite Micro implements).
TFLM_OPS = {
    "ABS": "AddAbs", "ADD": "AddAdd", "ADD_N": "AddAddN", "ARG_MAX": "AddArgMax", "ARG_MIN": "AddArgMin",
    "AVERAGE_POOL_2D": "AddAveragePool2D", "BATCH_MATMUL": "AddBatchMatMul",
    "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd", "CAST": "AddCast", "CEIL": "AddCeil",
    "CONCATENATION": "AddConcatenation", "CONV_2D": "AddConv2D", "COS": "AddCos", "CUMSUM": "AddCumSum",
    "DEPTH_TO_SPACE": "AddDepthToSpace", "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
    "DEQUANTIZE": "AddDequantize", "DIV": "AddDiv", "ELU": "AddElu", "EQUAL": "AddEqual", "EXP": "AddExp",
    "EXPAND_DIMS": "AddExpandDims", "FILL": "AddFill", "FLOOR": "AddFloor", "FLOOR_DIV": "AddFloorDiv",
    "FLOOR_MOD": "AddFloorMod", "FULLY_CONNECTED": "AddFullyConnected", "GATHER": "AddGather",
    "GATHER_ND": "AddGatherNd", "GREATER": "AddGreater", "GREATER_EQUAL": "AddGreaterEqual",
    "HARD_SWISH": "AddHardSwish", "L2_NORMALIZATION": "AddL2Normalization", "L2_POOL_2D": "AddL2Pool2D",
    "LEAKY_RELU": "AddLeakyRelu", "LESS": "AddLess", "LESS_EQUAL": "AddLessEqual", "LOG": "AddLog",
    "LOG_SOFTMAX": "AddLogSoftmax", "LOGICAL_AND": "AddLogicalAnd", "LOGICAL_NOT": "AddLogicalNot",
    "LOGICAL_OR": "AddLogicalOr", "LOGISTIC": "AddLogistic", "MAX_POOL_2D": "AddMaxPool2D",
    "MAXIMUM": "AddMaximum", "MEAN": "AddMean", "MINIMUM": "AddMinimum", "MIRROR_PAD": "AddMirrorPad",
    "MUL": "AddMul", "NEG": "AddNeg", "NOT_EQUAL": "AddNotEqual", "PACK": "AddPack", "PAD": "AddPad",
    "PADV2": "AddPadV2", "PRELU": "AddPrelu", "QUANTIZE": "AddQuantize", "REDUCE_MAX": "AddReduceMax",
    "REDUCE_MIN": "AddReduceMin", "RELU": "AddRelu", "RELU6": "AddRelu6", "RESHAPE": "AddReshape",
    "RESIZE_BILINEAR": "AddResizeBilinear", "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor",
    "ROUND": "AddRound", "RSQRT": "AddRsqrt", "SELECT_V2": "AddSelectV2", "SHAPE": "AddShape",
    "SIN": "AddSin", "SLICE": "AddSlice", "SOFTMAX": "AddSoftmax", "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd",
    "SPACE_TO_DEPTH": "AddSpaceToDepth", "SPLIT": "AddSplit", "SPLIT_V": "AddSplitV", "SQRT": "AddSqrt",
    "SQUARE": "AddSquare", "SQUARED_DIFFERENCE": "AddSquaredDifference", "SQUEEZE": "AddSqueeze",
    "STRIDED_SLICE": "AddStridedSlice", "SUB": "AddSub", "SUM": "AddSum", "SVDF": "AddSvdf",
    "TANH": "AddTanh", "TRANSPOSE": "AddTranspose", "TRANSPOSE_CONV": "AddTransposeConv",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM", "UNPACK": "AddUnpack",
    "WHILE": "AddWhile", "ZEROS_LIKE": "AddZerosLike",
}


def check_ops(model: Model) -> list[str]:
    """The distinct ops of ``model`` in first-use order; ExportError naming those TFLM lacks."""
    ops = list(dict.fromkeys(op.code for op in model.ops))
    bad = [o for o in ops if o not in TFLM_OPS]
    if bad:
        where = str(model.path) if model.path else "model"
        raise ExportError(f"{where}: operators that TensorFlow Lite Micro does not support: {', '.join(bad)}")
    return ops


def measure_arena(raw: bytes, timeout: float = 120) -> int | None:
    """Arena bytes TFLite Micro allocates for ``raw`` (tflite-micro's recording allocator, run on this
    host; 64-bit pointers make its bookkeeping a little larger than on a 32-bit MCU). None if the
    ``tflite-micro`` package is missing or the model does not load."""
    parts = arena_breakdown(raw, timeout)
    return parts["total"] if parts else None


def arena_breakdown(raw: bytes, timeout: float = 120) -> dict[str, int] | None:
    """TFLite Micro's arena for ``raw``: ``total``, ``head`` (tensors: activations, input and output,
    whose size does not depend on the pointer width) and ``tail`` (persistent bookkeeping)."""
    code = ("import sys, numpy as np\n"
            "from tflite_micro.python.tflite_micro import runtime\n"
            "data = sys.stdin.buffer.read()\n"
            "it = runtime.Interpreter.from_bytes(data, arena_size=len(data) * 4 + (8 << 20))\n"
            "d = it.get_input_details(0)\n"
            "it.set_input(np.zeros(d['shape'], d['dtype']), 0)\n"
            "it.invoke()\n"
            "it.print_allocations()\n")
    try:
        proc = subprocess.run([sys.executable, "-c", code], input=raw, capture_output=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired:
        return None
    text = proc.stderr + proc.stdout
    found = {k: re.search(rb"Arena allocation " + k.encode() + rb" (\d+) bytes", text) for k in ("total", "head", "tail")}
    if proc.returncode != 0 or not all(found.values()):
        return None
    return {k: int(m.group(1)) for k, m in found.items() if m}


def arena_estimate(model: Model, activations: int) -> tuple[int, bool]:
    """(arena bytes to declare, whether TFLite Micro itself measured it). Adds 10 % + 1 KiB margin."""
    measured = measure_arena(model.raw)
    base = measured if measured is not None else activations + 512 * len(model.tensors) + 4096
    size = (int(base * 1.1) + 1024 + 15) // 16 * 16
    return size, measured is not None


def write_files(model: Model, prefix: str, section: str | None, arena: int, checked: bool) -> dict[str, str]:
    """``model_data.h`` and ``model_data.c`` contents."""
    up = prefix.upper()
    ops = check_ops(model)
    x, y = model.tensors[model.inputs[0]], model.tensors[model.outputs[0]]
    adds = " ".join(f"(resolver).{TFLM_OPS[o]}();" for o in ops)
    how = "measured with TFLite Micro's recording allocator + 10% + 1 KiB" if checked else \
        "estimated (tflite-micro not installed): check with MicroInterpreter::arena_used_bytes()"
    h = [f"/* {prefix}: the model as a TensorFlow Lite Micro flatbuffer array (Ember firmware_export). */",
         f"#ifndef {up}_MODEL_DATA_H", f"#define {up}_MODEL_DATA_H", "", "#include <stdint.h>", "",
         "#ifdef __cplusplus", 'extern "C" {', "#endif", "",
         f"extern const unsigned char {prefix}_model_data[];",
         f"extern const unsigned int {prefix}_model_data_len;", "",
         f"#define {up}_MODEL_DATA_LEN {len(model.raw)}",
         f"/* Tensor arena: {how}. */", f"#define {up}_TFLM_ARENA_BYTES {arena}"]
    for tag, t in (("INPUT", x), ("OUTPUT", y)):
        s, z = t.qparams()
        h += [f"#define {up}_TFLM_{tag}_SCALE {c_float(s)}", f"#define {up}_TFLM_{tag}_ZERO_POINT ({z})"]
    h += ["", f"/* Operators ({len(ops)}): {', '.join(ops)}.",
          f" *   static tflite::MicroMutableOpResolver<{up}_TFLM_OP_COUNT> resolver;",
          f" *   {up}_TFLM_REGISTER_OPS(resolver);",
          f" *   static uint8_t arena[{up}_TFLM_ARENA_BYTES] alignas(16);",
          f" *   tflite::MicroInterpreter interp(tflite::GetModel({prefix}_model_data), resolver, arena,",
          f" *                                   {up}_TFLM_ARENA_BYTES); */",
          f"#define {up}_TFLM_OP_COUNT {len(ops)}",
          f"#define {up}_TFLM_REGISTER_OPS(resolver) do {{ {adds} }} while (0)", "",
          "#ifdef __cplusplus", "}", "#endif", f"#endif /* {up}_MODEL_DATA_H */", ""]
    sect = f' __attribute__((section("{section}")))' if section else ""
    data = model.raw
    rows = [", ".join(f"0x{b:02x}" for b in data[i:i + 16]) for i in range(0, len(data), 16)]
    c = ['#include "model_data.h"', "",
         "#if defined(__cplusplus)", "#define EMBER_ALIGNAS16 alignas(16)",
         "#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L", "#define EMBER_ALIGNAS16 _Alignas(16)",
         "#elif defined(__GNUC__)", "#define EMBER_ALIGNAS16 __attribute__((aligned(16)))", "#else",
         "#define EMBER_ALIGNAS16", "#endif", "",
         f"EMBER_ALIGNAS16 const unsigned char {prefix}_model_data[{len(data)}]{sect} = {{", "  " + ",\n  ".join(rows), "};",
         f"const unsigned int {prefix}_model_data_len = {len(data)};", ""]
    return {"model_data.h": "\n".join(h), "model_data.c": "\n".join(c)}
