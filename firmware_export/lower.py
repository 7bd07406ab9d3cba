"""Lower a full-integer int8 TFLite graph to C kernel calls with their export-time parameters."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from firmware_export import lut, quant
from firmware_export.lower_more import COPY_OPS, S16_OPS, MoreOps
from firmware_export.tflite_model import Model, Op, Tensor
from sdk.errors import ExportError

ALIAS_OPS = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS"}
KERNEL_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "SUB", "MUL", "AVERAGE_POOL_2D", "MAX_POOL_2D",
              "SOFTMAX", "MEAN", "RELU", "RELU6", "PAD", "PADV2", "TRANSPOSE", "QUANTIZE"}
SUPPORTED_OPS = ALIAS_OPS | KERNEL_OPS | lut.LUT_OPS | COPY_OPS
# What indexing/unpacking/arithmetic raise on a graph whose shapes and options contradict each other.
INCONSISTENT = (ValueError, IndexError, TypeError, KeyError, ZeroDivisionError, OverflowError, AttributeError)

INT8_FIX = ("make a full-integer int8 model first: `ember optimize MODEL --tiers int8` makes an int8 tier, "
            "or call sdk.optimize.tflite_export.onnx_to_tflite(onnx, out, int8=True, calibration=...)")


@dataclass
class ConstArray:
    name: str
    ctype: str  # "int8_t", "int32_t", "uint32_t", "int64_t" or "double"
    values: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(self.values.size) * {"int8_t": 1, "int32_t": 4, "uint32_t": 4, "int64_t": 8, "double": 8}[self.ctype]


@dataclass
class Layer:
    index: int  # the TFLite op index
    op: str
    kernel: str  # C function
    params_type: str  # C struct type ("" for ember_copy)
    fields: dict[str, object]
    inputs: list[int]  # activation tensor ids read, in kernel argument order
    output: int
    consts: list[ConstArray] = field(default_factory=list)
    macs: int = 0
    scratch_bytes: int = 0  # arena bytes the kernel needs while it runs (CMSIS-NN's ctx buffer)
    rescale: np.ndarray | None = None  # FULLY_CONNECTED: LiteRT's float64 output rescale per channel
    plain_filter: np.ndarray | None = None  # CONV_2D: the weights in TFLite's layout (consts may be reordered)

    @property
    def weight_bytes(self) -> int:
        return sum(c.nbytes for c in self.consts)


def shape4(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    if len(shape) > 4:
        raise ExportError(f"tensors of rank {len(shape)} are not supported (at most 4)")
    s = (1,) * (4 - len(shape)) + tuple(int(d) for d in shape)
    return s  # type: ignore[return-value]


def interleave4(w: np.ndarray) -> np.ndarray:
    """Rows of a [rows, depth] (or [rows, 1, 1, depth]) int8 matrix in blocks of 4, interleaved 4 bytes
    at a time (block g holds row 4g+r's bytes d..d+3 at (d/4)*16 + r*4), then the leftover rows plainly:
    the layout Ember's SMLAD dot products walk with one pointer. Needs depth % 4 == 0."""
    w2 = np.asarray(w, np.int8).reshape(len(w), -1)
    rows, depth = w2.shape
    blocks = rows // 4
    head = w2[:blocks * 4].reshape(blocks, 4, depth // 4, 4).transpose(0, 2, 1, 3)
    return np.concatenate([head.ravel(), w2[blocks * 4:].ravel()]).astype(np.int8)


def c_shape(shape: tuple[int, ...]) -> str:
    n, h, w, c = shape4(shape)
    return f"{{{n}, {h}, {w}, {c}}}"


def check_model(model: Model) -> None:
    """Reject what the exporter cannot handle, with the reason and the fix."""
    where = str(model.path) if model.path else "model"
    if model.subgraphs != 1:
        raise ExportError(f"{where}: {model.subgraphs} subgraphs (control flow) are not supported; export a "
                          "single-subgraph model")
    dyn = [t.name for t in model.tensors if t.dynamic]
    if dyn:
        raise ExportError(f"{where}: dynamic shapes (tensors {', '.join(dyn[:5])}) cannot be planned at export "
                          "time (a -1 batch of 1 is fine; other -1 dimensions are not); export the model with "
                          "fixed sizes, e.g. a fixed input height/width")
    io = [model.tensors[i] for i in model.inputs + model.outputs]
    floats = [t.name for t in io if t.dtype not in ("int8", "int16")]
    if floats or any(op.code in ("DEQUANTIZE",) for op in model.ops):
        kinds = ", ".join(f"{t.name}: {t.dtype}" for t in io if t.dtype != "int8") or "float inside"
        raise ExportError(f"{where}: not a full-integer int8 model ({kinds}); {INT8_FIX}")
    bad = sorted({op.code for op in model.ops if op.code not in SUPPORTED_OPS})
    if bad:
        raise ExportError(f"{where}: operators not supported by the C exporter: {', '.join(bad)} "
                          f"(supported: {', '.join(sorted(SUPPORTED_OPS))})")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ExportError(f"{where}: {len(model.inputs)} inputs / {len(model.outputs)} outputs; the C API "
                          "takes one int8 input and one int8 output")
    for op in model.ops:
        for t in op.outputs:
            if model.tensors[t].dtype == "int16" and op.code in S16_OPS | ALIAS_OPS:
                continue  # 16x8: int16 activations, int8 weights
            if model.tensors[t].dtype != "int8":
                raise ExportError(f"{where}: op {op.index} ({op.code}) produces {model.tensors[t].dtype} "
                                  f"tensor {model.tensors[t].name!r}; {INT8_FIX}")


class Lowerer(MoreOps):
    def __init__(self, model: Model, prefix: str) -> None:
        self.m = model
        self.prefix = prefix
        self.fused_pads = self.find_fusable_pads()

    def find_fusable_pads(self) -> dict[int, tuple[int, int, int]]:
        """PAD outputs that a convolution can absorb: padded tensor id -> (source, before_h, before_w).

        Padding with the input zero point adds (zp - zp) * w = 0 to the accumulator, exactly what the
        conv kernels do for out-of-image taps, so the padded copy never has to exist in the arena."""
        fused = {}
        for op in self.m.ops:
            if op.code != "PAD" or not self.m.is_const(op.inputs[1]):
                continue
            x, y = self.t(op.inputs[0]), self.t(op.outputs[0])
            users = self.m.consumers(op.outputs[0])
            pads = np.asarray(self.t(op.inputs[1]).data).reshape(-1, 2)
            if (len(x.shape) != 4 or len(users) != 1 or op.outputs[0] in self.m.outputs
                    or users[0].code not in ("CONV_2D", "DEPTHWISE_CONV_2D") or users[0].inputs[0] != op.outputs[0]
                    or x.scale is None or y.scale is None or x.qparams() != y.qparams()
                    or pads[0].any() or pads[3].any()):
                continue
            fused[op.outputs[0]] = (op.inputs[0], int(pads[1][0]), int(pads[2][0]))
        return fused

    def t(self, i: int) -> Tensor:
        return self.m.tensors[i]

    def const(self, op: Op, name: str, ctype: str, values: np.ndarray) -> ConstArray:
        dtype = {"int8_t": np.int8, "int64_t": np.int64}.get(ctype, np.int32)
        return ConstArray(f"{self.prefix}_l{op.index}_{name}", ctype, np.ascontiguousarray(values, dtype).ravel())

    def lower(self) -> list[Layer]:
        layers = []
        for op in self.m.ops:
            if op.code in ALIAS_OPS or (op.code == "PAD" and op.outputs[0] in self.fused_pads):
                continue
            fn = getattr(self, "op_" + op.code.lower())
            try:
                made = fn(op)
                layers.extend(made if isinstance(made, list) else [made])
            except ExportError as e:
                raise ExportError(f"op {op.index} ({op.code}): {e}") from None
            except INCONSISTENT as e:  # shapes/options that contradict each other (a damaged file)
                raise ExportError(f"op {op.index} ({op.code}): its tensors or options are inconsistent "
                                  f"({type(e).__name__}: {e}); re-convert the model") from None
        return layers

    def act(self, op: Op, out: Tensor) -> tuple[int, int]:
        s, z = out.qparams()
        return quant.activation_range(int(op.opt("fusedActivationFunction", 0) or 0), s, z)

    def source(self, op: Op) -> int:
        """The activation a layer reads: a fused PAD's input instead of the padded copy."""
        return self.fused_pads.get(op.inputs[0], (op.inputs[0], 0, 0))[0]

    def conv_common(self, op: Op, kh: int, kw: int) -> dict[str, object]:
        x, y = self.t(op.inputs[0]), self.t(op.outputs[0])
        _, ih, iw, _ = shape4(x.shape)
        sh, sw = int(op.opt("strideH", 1) or 1), int(op.opt("strideW", 1) or 1)
        dh, dw = int(op.opt("dilationHFactor", 1) or 1), int(op.opt("dilationWFactor", 1) or 1)
        same = int(op.opt("padding", 0) or 0) == 0
        pad_h, oh = padding(sh, dh, ih, kh, same)
        pad_w, ow = padding(sw, dw, iw, kw, same)
        if (oh, ow) != shape4(y.shape)[1:3]:
            raise ExportError(f"output shape {y.shape} does not match padding/strides (expected {oh}x{ow})")
        lo, hi = self.act(op, y)
        src, before_h, before_w = self.fused_pads.get(op.inputs[0], (op.inputs[0], 0, 0))
        pad_h, pad_w, x = pad_h + before_h, pad_w + before_w, self.t(src)
        return {"in": c_shape(x.shape), "out": c_shape(y.shape), "kh": kh, "kw": kw, "stride_h": sh,
                "stride_w": sw, "dil_h": dh, "dil_w": dw, "pad_h": pad_h, "pad_w": pad_w,
                "in_offset": -x.qparams()[1], "out_offset": y.qparams()[1], "act_min": lo, "act_max": hi}

    def weights(self, op: Op, fields: dict[str, object], channels: int) -> list[ConstArray]:
        x, w, y = self.t(op.inputs[0]), self.t(op.inputs[1]), self.t(op.outputs[0])
        if w.data is None or w.dtype != "int8":
            raise ExportError(f"weights {w.name!r} must be constant int8 ({w.dtype}); {INT8_FIX}")
        if w.zero_point is not None and np.any(w.zero_point != 0):
            raise ExportError(f"weights {w.name!r} have non-zero zero points (int8 weights are symmetric)")
        mults, shifts = quant.per_channel_multipliers(x.qparams()[0], w.scale, y.qparams()[0], channels)
        consts = [self.const(op, "w", "int8_t", w.data),
                  self.const(op, "mult", "int32_t", np.array(mults)),
                  self.const(op, "shift", "int8_t", np.array(shifts))]
        fields.update(filter=consts[0].name, mult=consts[1].name, shift=consts[2].name, bias="NULL")
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            b = self.t(op.inputs[2])
            if b.data is None or b.dtype != "int32":
                raise ExportError(f"bias {b.name!r} must be a constant int32 tensor ({b.dtype})")
            consts.append(self.const(op, "bias", "int32_t", b.data))
            fields["bias"] = consts[-1].name
        return consts

    def op_conv_2d(self, op: Op) -> Layer:
        if self.t(op.inputs[0]).dtype == "int16":
            return self.s16_conv(op)
        w = self.t(op.inputs[1])
        cout, kh, kw, fc = w.shape
        f = self.conv_common(op, kh, kw)
        f["filter_c"] = fc
        if shape4(self.t(self.source(op)).shape)[3] % fc:
            raise ExportError(f"input channels are not a multiple of the filter depth {fc}")
        consts = self.weights(op, f, cout)
        cin = shape4(self.t(self.source(op)).shape)[3]
        y = shape4(self.t(op.outputs[0]).shape)
        layer = Layer(op.index, op.code, "ember_conv2d", "ember_conv_params", f, [self.source(op)], op.outputs[0],
                      consts, macs=y[0] * y[1] * y[2] * cout * kh * kw * fc, plain_filter=w.data)
        if fc == cin and cout >= 4 and np.all(consts[2].values <= 0) and np.all(consts[1].values >= 0):
            self.matvec_conv(op, layer, w.data)
        return layer

    def matvec_conv(self, op: Op, layer: Layer, w: np.ndarray) -> None:
        """One group: per output pixel, a matrix-vector product of the receptive field (gathered into an
        arena patch unless it is a 1x1 pixel read in place) with SMLAD-ready interleaved weights."""
        f, (cout, kh, kw, cin) = layer.fields, w.shape
        in_place = (kh, kw, f["pad_h"], f["pad_w"], cin % 4) == (1, 1, 0, 0, 0)
        taps = kh * kw * cin
        length = taps if in_place else -(-taps // 4) * 4
        f["pad_value"] = -int(f["in_offset"])  # type: ignore[call-overload]
        self.fold_input_offset(op, f, layer.consts, w)  # padded taps hold the zero point: they add 0
        rows = np.zeros((cout, length), np.int8)
        rows[:, :taps] = np.asarray(w, np.int8).reshape(cout, taps)
        layer.consts[0].values, f["interleave4"] = interleave4(rows), length
        layer.scratch_bytes = 0 if in_place else length

    def op_depthwise_conv_2d(self, op: Op) -> Layer:
        if self.t(op.inputs[0]).dtype == "int16":
            return self.s16_conv(op)
        w = self.t(op.inputs[1])
        _, kh, kw, cout = w.shape
        f = self.conv_common(op, kh, kw)
        cin = shape4(self.t(self.source(op)).shape)[3]
        f["depth_mult"] = cout // cin
        consts = self.weights(op, f, cout)
        y = shape4(self.t(op.outputs[0]).shape)
        return Layer(op.index, op.code, "ember_depthwise_conv2d", "ember_dwconv_params", f, [self.source(op)],
                     op.outputs[0], consts, macs=y[0] * y[1] * y[2] * cout * kh * kw)

    def fold_input_offset(self, op: Op, f: dict[str, object], consts: list[ConstArray], w: np.ndarray) -> None:
        """sum w * (x + offset) + bias = sum w * x + (bias + offset * sum w): the kernel then multiplies
        raw int8 pairs (exact in int32, as the reference's accumulator)."""
        off = int(f["in_offset"])  # type: ignore[call-overload]
        if off == 0:
            return
        folded = np.asarray(w, np.int64).reshape(len(w), -1).sum(axis=1) * off
        bias = next((c for c in consts if c.name.endswith("_bias")), None)
        if bias is None:
            consts.append(self.const(op, "bias", "int32_t", folded))
            f["bias"] = consts[-1].name
        else:
            bias.values = (bias.values.astype(np.int64) + folded).astype(np.int32)
        f["in_offset"] = 0

    def op_fully_connected(self, op: Op) -> Layer:
        if self.t(op.inputs[0]).dtype == "int16":
            return self.s16_fc(op)
        x, w, y = self.t(op.inputs[0]), self.t(op.inputs[1]), self.t(op.outputs[0])
        out_depth, in_depth = w.shape
        lo, hi = self.act(op, y)
        f: dict[str, object] = {"batches": x.size // in_depth, "in_depth": in_depth, "out_depth": out_depth,
                                "in_offset": -x.qparams()[1], "out_offset": y.qparams()[1], "act_min": lo,
                                "act_max": hi, "per_channel": int(len(w.scale) > 1)}
        channels = out_depth if len(w.scale) > 1 else 1
        consts = self.weights(op, f, channels)
        self.fold_input_offset(op, f, consts, w.data)
        if in_depth % 4 == 0 and out_depth >= 4:
            consts[0].values, f["interleave4"] = interleave4(w.data), 1
        (sx, _), (sy, _) = x.qparams(), y.qparams()
        scales = [float(sx) * float(w.scale[c]) / float(sy) for c in range(channels)]
        fixed = quant.fc_fixed_point(np.array(scales), int(y.qparams()[1]), lo, hi)
        if fixed is not None:  # the same rounding as LiteRT's double rescale, in integers (proven)
            consts.append(ConstArray(f"{self.prefix}_l{op.index}_fxmult", "uint32_t", np.array(fixed[0], np.int64)))
            f.update(fx_mult=consts[-1].name, fx_shift=fixed[1] - 32)
        else:
            consts.append(ConstArray(f"{self.prefix}_l{op.index}_scale", "double", np.array(scales, np.float64)))
            f["scale"] = consts[-1].name
        return Layer(op.index, op.code, "ember_fully_connected", "ember_fc_params", f, [op.inputs[0]],
                     op.outputs[0], consts, macs=x.size * out_depth, rescale=np.array(scales, np.float64))

    def broadcast_size(self, op: Op) -> int:
        """Elements of the second operand: the output's, or its last dimension (or 1), repeated."""
        a, b, y = self.t(op.inputs[0]), self.t(op.inputs[1]), self.t(op.outputs[0])
        if a.shape == b.shape == y.shape:
            return y.size
        last = shape4(y.shape)[3]
        if shape4(a.shape) != shape4(y.shape) or shape4(b.shape) not in ((1, 1, 1, last), (1, 1, 1, 1)):
            raise ExportError(f"broadcasting {op.code} ({a.shape}, {b.shape}) is supported only with the second "
                              "operand equal, per channel (last dimension) or a scalar")
        return b.size

    def op_add(self, op: Op) -> Layer:
        a, b, y = self.t(op.inputs[0]), self.t(op.inputs[1]), self.t(op.outputs[0])
        size2 = self.broadcast_size(op)
        sub = op.code == "SUB"
        p = quant.add_params(a.qparams()[0], b.qparams()[0], y.qparams()[0])
        lo, hi = self.act(op, y)
        f = {"size": y.size, "in1_offset": -a.qparams()[1], "in2_offset": -b.qparams()[1],
             "out_offset": y.qparams()[1], "left_shift": p["left_shift"], "in1_mult": p["m1"],
             "in1_shift": p["s1"], "in2_mult": p["m2"], "in2_shift": p["s2"], "out_mult": p["mo"],
             "out_shift": p["so"], "act_min": lo, "act_max": hi, "size2": size2}
        consts, inputs = [], []
        for i, tid in enumerate(op.inputs[:2]):
            if self.m.is_const(tid):  # a constant operand becomes a flash array
                consts.append(self.const(op, f"in{i}", "int8_t", self.t(tid).data))
                inputs.append(~(len(consts) - 1))  # negative: index into consts
            else:
                inputs.append(tid)
        if y.size >= 2048 or sub or size2 != y.size:  # tables: 256 possible rescaled values per input
            if p["so"] > 0:
                raise ExportError(f"{op.code} whose output scale is below 2^-20 of its inputs' is not supported")
            q = np.arange(-128, 128, dtype=np.int64)
            for i, k in ((1, "in1"), (2, "in2")):
                shifted = (q + int(f[f"{k}_offset"])) * (1 << int(f["left_shift"]))
                table = quant.mbqm(shifted, int(f[f"{k}_mult"]), int(f[f"{k}_shift"])) * (-1 if sub and i == 2 else 1)
                consts.append(self.const(op, f"lut{i}", "int32_t", np.roll(table, -128)))  # index: (uint8_t)x
                f[f"lut{i}"] = consts[-1].name
        return Layer(op.index, op.code, "ember_add", "ember_add_params", f, inputs, op.outputs[0], consts)

    op_sub = op_add

    def op_mul(self, op: Op) -> Layer:
        a, b, y = self.t(op.inputs[0]), self.t(op.inputs[1]), self.t(op.outputs[0])
        size2 = self.broadcast_size(op)
        mult, shift = quant.quantize_multiplier(float(a.qparams()[0]) * float(b.qparams()[0]) / float(y.qparams()[0]))
        lo, hi = self.act(op, y)
        f = {"size": y.size, "size2": size2, "in1_offset": -a.qparams()[1], "in2_offset": -b.qparams()[1],
             "out_offset": y.qparams()[1], "mult": mult, "shift": shift, "act_min": lo, "act_max": hi}
        consts, inputs = [], []
        for i, tid in enumerate(op.inputs[:2]):
            if self.m.is_const(tid):
                consts.append(self.const(op, f"in{i}", "int8_t", self.t(tid).data))
                inputs.append(~(len(consts) - 1))
            else:
                inputs.append(tid)
        return Layer(op.index, op.code, "ember_mul", "ember_mul_params", f, inputs, op.outputs[0], consts)

    def pool(self, op: Op, kernel: str) -> Layer:
        x, y = self.t(op.inputs[0]), self.t(op.outputs[0])
        kh, kw = int(op.opt("filterHeight", 1)), int(op.opt("filterWidth", 1))
        f = self.conv_common(op, kh, kw)
        for k in ("in_offset", "out_offset", "dil_h", "dil_w"):
            f.pop(k)
        if x.qparams() != y.qparams():
            raise ExportError("pooling with different input/output quantization is not supported")
        return Layer(op.index, op.code, kernel, "ember_pool_params", f, [op.inputs[0]], op.outputs[0])

    def op_average_pool_2d(self, op: Op) -> Layer:
        return self.pool(op, "ember_avg_pool")

    def op_max_pool_2d(self, op: Op) -> Layer:
        return self.pool(op, "ember_max_pool")

    def op_softmax(self, op: Op) -> Layer:
        x, y = self.t(op.inputs[0]), self.t(op.outputs[0])
        if y.qparams()[1] != -128 or abs(y.qparams()[0] - 1 / 256) > 1e-3 / 256:
            raise ExportError(f"int8 softmax output must have scale 1/256 and zero point -128 (got {y.qparams()})")
        beta = float(op.opt("beta", 1.0))
        if not 0 < beta < 1e6:
            raise ExportError(f"softmax beta {beta} is not supported (it must be > 0; 1.0 in converted models)")
        mult, shift, diff_min = quant.softmax_params(beta, x.qparams()[0])
        depth = x.shape[-1]
        f = {"outer": x.size // depth, "depth": depth, "input_mult": mult, "input_left_shift": shift,
             "diff_min": diff_min}
        return Layer(op.index, op.code, "ember_softmax", "ember_softmax_params", f, [op.inputs[0]], op.outputs[0])

    def op_mean(self, op: Op) -> Layer:
        x, axes_t, y = self.t(op.inputs[0]), self.t(op.inputs[1]), self.t(op.outputs[0])
        if axes_t.data is None:
            raise ExportError("MEAN axes must be constant")
        rank = len(x.shape)
        axes = sorted({int(a) % rank + (4 - rank) for a in np.ravel(axes_t.data)})
        in4 = shape4(x.shape)
        out4 = tuple(1 if i in axes else d for i, d in enumerate(in4))
        if int(np.prod(out4)) != y.size:
            raise ExportError(f"MEAN output {y.shape} does not match reduced input {in4} over {axes}")
        count = int(np.prod([in4[i] for i in axes]))
        m, s = quant.quantize_multiplier(float(x.qparams()[0]) / float(y.qparams()[0]))
        # QuantizedMeanOrSum folds 1/count into the multiplier (integer division, shift clamped).
        shift = min(count.bit_length() - 1, 32, 31 + s)
        m, s = int((m << shift) // count), s - shift
        f = {"in": c_shape(x.shape), "out": "{{{}, {}, {}, {}}}".format(*out4), "in_zp": x.qparams()[1],
             "out_zp": y.qparams()[1], "mult": m, "shift": s}
        return Layer(op.index, op.code, "ember_mean", "ember_mean_params", f, [op.inputs[0]], op.outputs[0])

    def requant(self, op: Op, lo_f: float | None, hi_f: float | None) -> Layer:
        x, y = self.t(op.inputs[0]), self.t(op.outputs[0])
        (sx, zx), (sy, zy) = x.qparams(), y.qparams()
        m, s = quant.quantize_multiplier(float(sx) / float(sy))

        def q(v: float) -> int:
            return zy + quant.tflite_round(float(np.float32(v) / np.float32(sy)))

        lo = -128 if lo_f is None else max(-128, q(lo_f))
        hi = 127 if hi_f is None else min(127, q(hi_f))
        f = {"size": y.size, "in_offset": zx, "out_offset": zy, "mult": m, "shift": s, "act_min": lo,
             "act_max": hi}
        return Layer(op.index, op.code, "ember_requant", "ember_requant_params", f, [op.inputs[0]], op.outputs[0])

    def lut(self, op: Op) -> Layer:
        y = self.t(op.outputs[0])
        consts = [self.const(op, "table", "int8_t", lut.table(self.m, op))]
        return Layer(op.index, op.code, "ember_lut", "ember_lut_params", {"size": y.size, "table": consts[0].name},
                     [op.inputs[0]], op.outputs[0], consts)

    op_logistic = op_tanh = op_hard_swish = op_leaky_relu = lut  # type: ignore[assignment]

    def op_relu(self, op: Op) -> Layer:
        return self.requant(op, 0.0, None)

    def op_relu6(self, op: Op) -> Layer:
        return self.requant(op, 0.0, 6.0)

    def op_quantize(self, op: Op) -> Layer:
        return self.requant(op, None, None)


def padding(stride: int, dilation: int, in_size: int, k: int, same: bool) -> tuple[int, int]:
    """TFLite's ComputePaddingHeightWidth for one axis: (pad before, output size)."""
    eff = (k - 1) * dilation + 1
    out = (in_size + stride - 1) // stride if same else (in_size + stride - eff) // stride
    total = max((out - 1) * stride + eff - in_size, 0)
    return total // 2, out
