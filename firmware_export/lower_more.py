"""Lowering of data-movement operators (PAD, TRANSPOSE, slices, splits, concatenation, resize) and TRANSPOSE_CONV (mixed into ``lower.Lowerer``).

STRIDED_SLICE, SLICE, SPLIT, SPLIT_V and CONCATENATION become strided copies (``ember_strided_copy``):
each dimension's first index, step and count are found at export time by slicing an index range with
the op's own rule, so masks, negative indices and negative strides need no C code. SPLIT gives one copy
per output, CONCATENATION one per input (each writing its part of the output). int8 LiteRT requires
these ops to keep the quantization (no rescale): so does the exporter. RESIZE_NEAREST_NEIGHBOR reads
through row and column tables computed with LiteRT's float32 rule; TRANSPOSE_CONV gathers, per output
element, the products LiteRT's reference kernel scatters (the same int32 sum).

16x8 (int16 activations, int8 weights, int64 bias: the scheme audio models use) CONV_2D,
DEPTHWISE_CONV_2D and FULLY_CONNECTED run LiteRT's reference arithmetic: int64 accumulators and
TFLite's 64-bit MultiplyByQuantizedMultiplier (multiplier rounded to 16 bits).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from firmware_export import quant
from firmware_export.tflite_model import Op, Tensor
from sdk.errors import ExportError

S16_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}  # with int16 activations ("16x8")
COPY_OPS = {"STRIDED_SLICE", "SLICE", "SPLIT", "SPLIT_V", "CONCATENATION", "RESIZE_NEAREST_NEIGHBOR",
            "TRANSPOSE_CONV"}


def _braces(values: Any) -> str:
    return "{" + ", ".join(str(int(v)) for v in values) + "}"


def _strides(shape: tuple[int, int, int, int]) -> list[int]:
    return [shape[1] * shape[2] * shape[3], shape[2] * shape[3], shape[3], 1]


def _axis_runs(shape: tuple[int, int, int, int], slices: list[slice]) -> tuple[list[int], list[int], int]:
    """Per dimension (count, step) and the first element's offset of ``x[slices]`` on a 4-D ``shape``."""
    counts, steps, start = [], [], 0
    for d, sl, stride in zip(shape, slices, _strides(shape)):
        idx = np.arange(d)[sl]
        if idx.size == 0:
            raise ExportError(f"the slice selects no element along a dimension of size {d}")
        counts.append(int(idx.size))
        steps.append(int(idx[1] - idx[0]) * stride if idx.size > 1 else stride)
        start += int(idx[0]) * stride
    return counts, steps, start


def _nearest(out_size: int, in_size: int, align: bool, half: bool) -> np.ndarray:
    """LiteRT's GetNearestNeighbor for every output index, in float32 as the reference computes it."""
    f = np.float32
    scale = (f(in_size - 1) / f(out_size - 1)) if align and out_size > 1 else f(in_size) / f(out_size)
    v = (np.arange(out_size, dtype=f) + f(0.5 if half else 0.0)) * scale
    idx = np.floor(v.astype(np.float64) + 0.5) if align else np.floor(v)  # v >= 0: std::round, exactly
    idx = np.minimum(idx.astype(np.int64), in_size - 1)
    return np.maximum(idx, 0) if half else idx


class MoreOps:
    """``op_*`` methods for ``lower.Lowerer`` (which provides ``t``, ``m``, ``act``, ``const``)."""

    def op_pad(self, op: Op) -> Any:
        from firmware_export.lower import Layer, c_shape

        x, pads, y = self.t(op.inputs[0]), self.t(op.inputs[1]), self.t(op.outputs[0])
        if pads.data is None:
            raise ExportError("PAD paddings must be constant")
        if x.qparams() != y.qparams():
            raise ExportError("PAD with different input/output quantization is not supported")
        before = [0] * (4 - len(x.shape)) + [int(p) for p in np.asarray(pads.data).reshape(-1, 2)[:, 0]]
        value = y.qparams()[1]
        if op.code == "PADV2" and len(op.inputs) > 2 and self.m.is_const(op.inputs[2]):
            value = int(np.ravel(self.t(op.inputs[2]).data)[0])
        f = {"in": c_shape(x.shape), "out": c_shape(y.shape), "before": "{" + ", ".join(map(str, before)) + "}",
             "pad_value": value}
        return Layer(op.index, op.code, "ember_pad", "ember_pad_params", f, [op.inputs[0]], op.outputs[0])

    op_padv2 = op_pad

    def op_transpose(self, op: Op) -> Any:
        from firmware_export.lower import Layer, c_shape

        x, perm_t, y = self.t(op.inputs[0]), self.t(op.inputs[1]), self.t(op.outputs[0])
        if perm_t.data is None:
            raise ExportError("TRANSPOSE permutation must be constant")
        extra = 4 - len(x.shape)
        perm = list(range(extra)) + [int(p) + extra for p in np.ravel(perm_t.data)]
        f = {"in": c_shape(x.shape), "out": c_shape(y.shape), "perm": "{" + ", ".join(map(str, perm)) + "}"}
        return Layer(op.index, op.code, "ember_transpose", "ember_transpose_params", f, [op.inputs[0]],
                     op.outputs[0])

    def copy_layer(self, op: Op, src: int, dst: int, counts: list[int], in_steps: list[int], in_start: int,
                   out_steps: list[int], out_start: int) -> Any:
        from firmware_export.lower import Layer

        x, y = self.t(src), self.t(dst)  # type: ignore[attr-defined]
        if x.qparams() != y.qparams():
            raise ExportError(f"{op.code} with different input/output quantization ({x.qparams()} -> {y.qparams()}) "
                              "is not supported (LiteRT's int8 kernel requires them equal)")
        f = {"count": _braces(counts), "in_start": in_start, "in_step": _braces(in_steps), "out_start": out_start,
             "out_step": _braces(out_steps)}
        if self.m.is_const(src):  # a constant part (of a CONCATENATION): a flash array  # type: ignore[attr-defined]
            part = f"in{op.inputs.index(src)}_{out_start}"
            return Layer(op.index, op.code, "ember_strided_copy", "ember_strided_params", f, [~0], dst,
                         [self.const(op, part, "int8_t", x.data)])  # type: ignore[attr-defined]
        return Layer(op.index, op.code, "ember_strided_copy", "ember_strided_params", f, [src], dst)

    def const_ints(self, op: Op, i: int, what: str) -> np.ndarray:
        t = self.t(op.inputs[i])  # type: ignore[attr-defined]
        if t.data is None:
            raise ExportError(f"{op.code} {what} must be constant")
        return np.asarray(t.data, np.int64).ravel()

    def slice_layer(self, op: Op, src: int, dst: int, slices: list[slice]) -> Any:
        from firmware_export.lower import shape4

        x = self.t(src)  # type: ignore[attr-defined]
        s4 = shape4(x.shape)
        full = [slice(None)] * (4 - len(x.shape)) + slices
        counts, steps, start = _axis_runs(s4, full)
        if int(np.prod(counts)) != self.t(dst).size:  # type: ignore[attr-defined]
            raise ExportError(f"{op.code} output {self.t(dst).shape} does not match the slice ({counts})")  # type: ignore[attr-defined]
        return self.copy_layer(op, src, dst, counts, steps, start, _strides(tuple(counts)), 0)  # type: ignore[arg-type]

    def op_strided_slice(self, op: Op) -> Any:
        x = self.t(op.inputs[0])  # type: ignore[attr-defined]
        begin, end, strides = (self.const_ints(op, i, w) for i, w in ((1, "begin"), (2, "end"), (3, "strides")))
        if op.opt("ellipsisMask", 0) or op.opt("newAxisMask", 0):
            raise ExportError("STRIDED_SLICE with ellipsis or new-axis masks is not supported")
        bm, em, sm = (int(op.opt(k, 0) or 0) for k in ("beginMask", "endMask", "shrinkAxisMask"))
        slices = []
        for i in range(len(x.shape)):
            b = None if bm >> i & 1 else int(begin[i])
            e = None if em >> i & 1 else int(end[i]) + (int(begin[i]) if op.opt("offset", False) else 0)
            if sm >> i & 1:
                b = int(begin[i]) % x.shape[i]
                e, strides[i] = b + 1, 1
            if strides[i] == 0:
                raise ExportError("STRIDED_SLICE stride 0")
            slices.append(slice(b, e, int(strides[i])))
        return self.slice_layer(op, op.inputs[0], op.outputs[0], slices)

    def op_slice(self, op: Op) -> Any:
        x = self.t(op.inputs[0])  # type: ignore[attr-defined]
        begin, size = self.const_ints(op, 1, "begin"), self.const_ints(op, 2, "size")
        slices = [slice(int(b), x.shape[i] if s < 0 else int(b + s)) for i, (b, s) in enumerate(zip(begin, size))]
        return self.slice_layer(op, op.inputs[0], op.outputs[0], slices)

    def split_layers(self, op: Op, src: int, axis: int, sizes: list[int]) -> list[Any]:
        x = self.t(src)  # type: ignore[attr-defined]
        axis %= len(x.shape)
        out, at = [], 0
        for dst, n in zip(op.outputs, sizes):
            slices = [slice(None)] * len(x.shape)
            slices[axis] = slice(at, at + n)
            out.append(self.slice_layer(op, src, dst, slices))
            at += n
        return out

    def op_split(self, op: Op) -> list[Any]:
        axis, x = int(self.const_ints(op, 0, "axis")[0]), self.t(op.inputs[1])  # type: ignore[attr-defined]
        n = len(op.outputs)
        if x.shape[axis] % n:
            raise ExportError(f"SPLIT of {x.shape[axis]} into {n} equal parts")
        return self.split_layers(op, op.inputs[1], axis, [x.shape[axis] // n] * n)

    def op_split_v(self, op: Op) -> list[Any]:
        axis = int(self.const_ints(op, 2, "axis")[0])
        x = self.t(op.inputs[0])  # type: ignore[attr-defined]
        sizes = [int(s) for s in self.const_ints(op, 1, "size_splits")]
        if -1 in sizes:
            sizes[sizes.index(-1)] = x.shape[axis] - (sum(sizes) + 1)
        return self.split_layers(op, op.inputs[0], axis, sizes)

    def op_concatenation(self, op: Op) -> list[Any]:
        from firmware_export.lower import shape4

        y = self.t(op.outputs[0])  # type: ignore[attr-defined]
        if int(op.opt("fusedActivationFunction", 0) or 0):
            raise ExportError("CONCATENATION with a fused activation is not supported")
        axis = int(op.opt("axis", 0)) % len(y.shape) + 4 - len(y.shape)
        y4 = shape4(y.shape)
        layers, at = [], 0
        for src in op.inputs:
            x4 = shape4(self.t(src).shape)  # type: ignore[attr-defined]
            start = at * _strides(y4)[axis]
            layers.append(self.copy_layer(op, src, op.outputs[0], list(x4), _strides(x4), 0, _strides(y4), start))
            at += x4[axis]
        if at != y4[axis]:
            raise ExportError(f"CONCATENATION inputs add up to {at}, the output has {y4[axis]} along the axis")
        return layers

    def op_resize_nearest_neighbor(self, op: Op) -> Any:
        from firmware_export.lower import Layer, c_shape, shape4

        x, y = self.t(op.inputs[0]), self.t(op.outputs[0])  # type: ignore[attr-defined]
        if x.qparams() != y.qparams():
            raise ExportError("RESIZE_NEAREST_NEIGHBOR with different input/output quantization is not supported")
        (_, ih, iw, _), (_, oh, ow, _) = shape4(x.shape), shape4(y.shape)
        align, half = bool(op.opt("alignCorners", False)), bool(op.opt("halfPixelCenters", False))
        consts = [self.const(op, "ymap", "int32_t", _nearest(oh, ih, align, half)),  # type: ignore[attr-defined]
                  self.const(op, "xmap", "int32_t", _nearest(ow, iw, align, half))]  # type: ignore[attr-defined]
        f = {"in": c_shape(x.shape), "out": c_shape(y.shape), "ymap": consts[0].name, "xmap": consts[1].name}
        return Layer(op.index, op.code, "ember_resize_nearest", "ember_resize_params", f, [op.inputs[0]],
                     op.outputs[0], consts)

    def op_transpose_conv(self, op: Op) -> Any:
        from firmware_export.lower import INT8_FIX, Layer, c_shape, padding, shape4

        w, x, y = self.t(op.inputs[1]), self.t(op.inputs[2]), self.t(op.outputs[0])  # type: ignore[attr-defined]
        if w.data is None or w.dtype != "int8" or (w.zero_point is not None and np.any(w.zero_point != 0)):
            raise ExportError(f"TRANSPOSE_CONV weights {w.name!r} must be constant symmetric int8; {INT8_FIX}")
        cout, kh, kw, cin = w.shape
        (_, ih, iw, _), (_, oh, ow, _) = shape4(x.shape), shape4(y.shape)
        sh, sw = int(op.opt("strideH", 1) or 1), int(op.opt("strideW", 1) or 1)
        same = int(op.opt("padding", 0) or 0) == 0
        pad_h, pad_w = padding(sh, 1, oh, kh, same)[0], padding(sw, 1, ow, kw, same)[0]
        mults, shifts = quant.per_channel_multipliers(x.qparams()[0], w.scale, y.qparams()[0], cout)
        lo, hi = self.act(op, y)  # type: ignore[attr-defined]
        consts = [self.const(op, "w", "int8_t", w.data), self.const(op, "mult", "int32_t", np.array(mults)),  # type: ignore[attr-defined]
                  self.const(op, "shift", "int8_t", np.array(shifts))]  # type: ignore[attr-defined]
        f: dict[str, object] = {"in": c_shape(x.shape), "out": c_shape(y.shape), "kh": kh, "kw": kw, "stride_h": sh,
                                "stride_w": sw, "pad_h": pad_h, "pad_w": pad_w, "in_offset": -x.qparams()[1],
                                "out_offset": y.qparams()[1], "act_min": lo, "act_max": hi,
                                "filter": consts[0].name, "bias": "NULL", "mult": consts[1].name,
                                "shift": consts[2].name}
        if len(op.inputs) > 3 and op.inputs[3] >= 0:
            b: Tensor = self.t(op.inputs[3])  # type: ignore[attr-defined]
            if b.data is None or b.dtype != "int32":
                raise ExportError(f"TRANSPOSE_CONV bias {b.name!r} must be a constant int32 tensor ({b.dtype})")
            consts.append(self.const(op, "bias", "int32_t", b.data))  # type: ignore[attr-defined]
            f["bias"] = consts[-1].name
        return Layer(op.index, op.code, "ember_transpose_conv", "ember_tconv_params", f, [op.inputs[2]],
                     op.outputs[0], consts, macs=ih * iw * cin * cout * kh * kw)

    def s16_weights(self, op: Op, channels: int) -> tuple[list[Any], dict[str, object]]:
        """int8 weights, int64 bias, per-channel multipliers of a 16x8 layer (activations symmetric)."""
        x, w, y = self.t(op.inputs[0]), self.t(op.inputs[1]), self.t(op.outputs[0])  # type: ignore[attr-defined]
        if w.data is None or w.dtype != "int8":
            raise ExportError(f"16x8 {op.code} needs constant int8 weights ({w.name!r} is {w.dtype})")
        if x.qparams()[1] or y.qparams()[1]:
            raise ExportError(f"16x8 {op.code}: int16 activations must have zero point 0")
        mults, shifts = quant.per_channel_multipliers(x.qparams()[0], w.scale, y.qparams()[0], channels)
        consts = [self.const(op, "w", "int8_t", w.data), self.const(op, "mult", "int32_t", np.array(mults)),  # type: ignore[attr-defined]
                  self.const(op, "shift", "int8_t", np.array(shifts))]  # type: ignore[attr-defined]
        s, z = y.qparams()
        lo, hi = quant.activation_range(int(op.opt("fusedActivationFunction", 0) or 0), s, z, bits=16)
        f: dict[str, object] = {"act_min": lo, "act_max": hi, "filter": consts[0].name, "bias": "NULL",
                                "mult": consts[1].name, "shift": consts[2].name}
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            b = self.t(op.inputs[2])  # type: ignore[attr-defined]
            if b.data is None or b.dtype not in ("int64", "int32"):
                raise ExportError(f"16x8 {op.code} bias {b.name!r} must be a constant int64 tensor ({b.dtype})")
            consts.append(self.const(op, "bias", "int64_t", b.data))  # type: ignore[attr-defined]
            f["bias"] = consts[-1].name
        return consts, f

    def s16_conv(self, op: Op) -> Any:
        from firmware_export.lower import Layer, shape4

        w, y = self.t(op.inputs[1]), self.t(op.outputs[0])  # type: ignore[attr-defined]
        depthwise = op.code == "DEPTHWISE_CONV_2D"
        kh, kw = (w.shape[1], w.shape[2])
        cout = shape4(y.shape)[3]
        cin = shape4(self.t(op.inputs[0]).shape)[3]  # type: ignore[attr-defined]
        if not depthwise and w.shape[3] != cin:
            raise ExportError("16x8 grouped convolutions are not supported")
        consts, f = self.s16_weights(op, cout)
        common = self.conv_common(op, kh, kw)  # type: ignore[attr-defined]
        f = {**{k: common[k] for k in ("in", "out", "kh", "kw", "stride_h", "stride_w", "dil_h", "dil_w",
                                       "pad_h", "pad_w")}, "depth_mult": cout // cin if depthwise else 0, **f}
        n, oh, ow, _ = shape4(y.shape)
        return Layer(op.index, op.code, "ember_conv2d_s16", "ember_conv16_params", f, [self.source(op)],  # type: ignore[attr-defined]
                     op.outputs[0], consts, macs=n * oh * ow * cout * kh * kw * (1 if depthwise else cin))

    def s16_fc(self, op: Op) -> Any:
        from firmware_export.lower import ConstArray, Layer

        x, w = self.t(op.inputs[0]), self.t(op.inputs[1])  # type: ignore[attr-defined]
        out_depth, in_depth = w.shape
        per_channel = len(w.scale) > 1
        consts, f = self.s16_weights(op, out_depth if per_channel else 1)
        (sx, _), (sy, _) = x.qparams(), self.t(op.outputs[0]).qparams()  # type: ignore[attr-defined]
        scales = np.array([float(sx) * float(s) / float(sy) for s in w.scale[:out_depth if per_channel else 1]])
        del consts[1:3], f["mult"], f["shift"]  # LiteRT's reference FC rescales in double (as for int8)
        consts.append(ConstArray(f"{self.prefix}_l{op.index}_scale", "double", scales))  # type: ignore[attr-defined]
        f = {"batches": x.size // in_depth, "in_depth": in_depth, "out_depth": out_depth,
             "per_channel": int(per_channel), **f, "scale": consts[-1].name}
        return Layer(op.index, op.code, "ember_fully_connected_s16", "ember_fc16_params", f, [op.inputs[0]],
                     op.outputs[0], consts, macs=x.size * out_depth)

