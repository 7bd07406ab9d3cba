"""Layout and shape ops of the TFLite export: Concat, Slice, Split, Gather, Transpose, Pad,
Squeeze/Unsqueeze, SpaceToDepth, Resize. Axes are mapped to the tensor's TFLite layout
(channels-last for conv feature maps), so no transposes are added around them."""

from __future__ import annotations

from typing import Any

import numpy as np

from sdk.errors import ExportError
from sdk.optimize.tflite_convert import ConverterBase


class ShapeOps(ConverterBase):
    def const_input(self, node: Any, i: int, attr: str | None = None, default: Any = None) -> Any:
        """Input ``i`` as a constant (opset ≥ 13 style) or attribute ``attr`` (older opsets)."""
        if len(node.input) > i and node.input[i]:
            return self.const(node.input[i])
        if attr is not None and attr in self.attrs(node):
            return np.array(self.attrs(node)[attr])
        return default

    def layout_of(self, names: list[str], rank: int) -> bool:
        """Channels-last when any non-constant input is (and the rank has a channel axis)."""
        return rank >= 3 and any(self.t.get(n, (0, False))[1] for n in names if n not in self.consts)

    def operand(self, node: Any, name: str, rank: int, cl: bool) -> int:
        if name in self.consts:
            return self.layout_const(f"{node.name}/{name}", self.consts[name], rank, cl)
        return self.view(name, cl)

    def op_Concat(self, node: Any) -> None:
        names = [n for n in node.input if n]
        r = self.rank(node.output[0])
        cl = self.layout_of(names, r)
        inputs = [self.operand(node, n, r, cl) for n in names]
        out = self.new(node.output[0], node.output[0], cl=cl)
        self.g.add_op("CONCATENATION", inputs, [out], "ConcatenationOptions", node.name,
                      axis=self.axis(node.output[0], int(self.attrs(node)["axis"]), cl))

    def op_Slice(self, node: Any) -> None:
        src = node.input[0]
        shape = self.shape(src)
        starts = self.const_input(node, 1, "starts")
        ends = self.const_input(node, 2, "ends")
        axes = self.const_input(node, 3, "axes", np.arange(len(starts)))
        steps = self.const_input(node, 4, None, np.ones(len(starts), np.int64))
        idx, cl = self.t[src]
        tshape = self.g.tensors[idx].shape
        begin, end, stride = [0] * len(tshape), list(tshape), [1] * len(tshape)
        for a, s0, e0, st in zip(axes.tolist(), starts.tolist(), ends.tolist(), steps.tolist()):
            dim = shape[a % len(shape)]
            if st < 1:
                raise ExportError(f"{self.path}: Slice node {node.name!r} has step {st}; only positive steps export")
            s0 = min(max(s0 + dim if s0 < 0 else s0, 0), dim)
            e0 = min(max(e0 + dim if e0 < 0 else e0, 0), dim)
            t = self.axis(src, a, cl)
            begin[t], end[t], stride[t] = s0, e0, st
        out = self.new(node.output[0], node.output[0], cl=cl)
        consts = [self.shape_const(f"{node.name}/{k}", v) for k, v in (("begin", begin), ("end", end),
                                                                         ("strides", stride))]
        self.g.add_op("STRIDED_SLICE", [idx, *consts], [out], "StridedSliceOptions", node.name)

    def op_Split(self, node: Any) -> None:
        src = node.input[0]
        axis = int(self.attrs(node).get("axis", 0))
        sizes = [self.shape(o)[axis % self.rank(src)] for o in node.output]
        idx, cl = self.t[src]
        outs = [self.new(o, o, cl=cl) for o in node.output]
        ax = self.g.add_tensor(f"{node.name}/axis", (), np.array(self.axis(src, axis, cl), np.int32))
        self.g.add_op("SPLIT_V", [idx, self.shape_const(f"{node.name}/sizes", sizes), ax], outs,
                      "SplitVOptions", node.name, numSplits=len(outs))

    def op_Gather(self, node: Any) -> None:
        indices = self.const(node.input[1])
        src = node.input[0]
        if indices.ndim != 1:
            raise ExportError(f"{self.path}: Gather node {node.name!r} has {indices.ndim}-D indices; only "
                              "1-D constant indices export")
        idx, cl = self.t[src]
        dim = self.shape(src)[int(self.attrs(node).get("axis", 0)) % self.rank(src)]
        ind = self.g.add_tensor(f"{node.name}/indices", (), (indices % dim).astype(np.int32))
        out = self.new(node.output[0], node.output[0], cl=cl)
        self.g.add_op("GATHER", [idx, ind], [out], "GatherOptions", node.name,
                      axis=self.axis(src, int(self.attrs(node).get("axis", 0)), cl))

    def op_Transpose(self, node: Any) -> None:
        src = node.input[0]
        perm = list(self.attrs(node).get("perm", range(self.rank(src))[::-1]))
        out = self.new(node.output[0], node.output[0], cl=False)
        self.g.add_op("TRANSPOSE", [self.view(src, False), self.shape_const(f"{node.name}/perm", perm)], [out],
                      "TransposeOptions", node.name)

    def op_Pad(self, node: Any) -> None:
        src = node.input[0]
        r = self.rank(src)
        pads = self.const_input(node, 1, "pads").astype(np.int64).tolist()
        mode = self.attrs(node).get("mode", b"constant")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        value = self.const_input(node, 2, "value", np.array(0.0))
        if len(node.input) > 3 and node.input[3]:
            raise ExportError(f"{self.path}: Pad node {node.name!r} has an axes input, which does not export")
        if min(pads) < 0:
            raise ExportError(f"{self.path}: Pad node {node.name!r} has negative pads (cropping); use Slice")
        idx, cl = self.t[src]
        tr = len(self.g.tensors[idx].shape)
        paddings = np.zeros((tr, 2), np.int32)
        for a in range(r):
            paddings[self.axis(src, a, cl)] = (pads[a], pads[a + r])
        inputs = [idx, self.g.add_tensor(f"{node.name}/paddings", (), paddings)]
        out = self.new(node.output[0], node.output[0], cl=cl)
        if mode == "reflect":
            self.g.add_op("MIRROR_PAD", inputs, [out], "MirrorPadOptions", node.name, mode=0)
        elif mode != "constant":
            raise ExportError(f"{self.path}: Pad node {node.name!r} uses mode {mode!r}; constant and reflect export")
        elif float(np.asarray(value).reshape(-1)[0]) == 0.0:
            self.g.add_op("PAD", inputs, [out], "PadOptions", node.name)
        else:
            inputs.append(self.g.add_tensor(f"{node.name}/value", (), np.asarray(value, np.float32).reshape(1)))
            self.g.add_op("PADV2", inputs, [out], "PadV2Options", node.name)

    def op_Squeeze(self, node: Any) -> None:
        self.reshape_node(node)  # type: ignore[attr-defined]

    op_Unsqueeze = op_Squeeze

    def op_SpaceToDepth(self, node: Any) -> None:
        out = self.new(node.output[0], node.output[0], cl=True)
        self.g.add_op("SPACE_TO_DEPTH", [self.view(node.input[0], True)], [out], "SpaceToDepthOptions", node.name,
                      blockSize=int(self.attrs(node)["blocksize"]))

    def op_Resize(self, node: Any) -> None:
        a = self.attrs(node)
        mode = a.get("mode", b"nearest").decode()
        ctm = a.get("coordinate_transformation_mode", b"half_pixel").decode()
        src = node.input[0]
        if self.rank(src) != 4:
            raise ExportError(f"{self.path}: Resize node {node.name!r} on a rank-{self.rank(src)} tensor; only "
                              "2-D (NCHW) resizes export")
        size = self.shape(node.output[0])[2:]
        options = {"alignCorners": ctm == "align_corners",
                   "halfPixelCenters": ctm in ("half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn")}
        if mode == "nearest":
            nearest = a.get("nearest_mode", b"round_prefer_floor").decode()
            ok = (ctm == "asymmetric" and nearest == "floor") or (
                ctm in ("half_pixel", "pytorch_half_pixel") and nearest == "round_prefer_ceil") or all(
                o % i == 0 for o, i in zip(size, self.shape(src)[2:]))  # integer upscale: all rules agree
            if not ok:
                raise ExportError(f"{self.path}: Resize node {node.name!r} (nearest, {ctm}, {nearest}) has no "
                                  "TFLite equivalent; use integer scale factors")
            code, opts = "RESIZE_NEAREST_NEIGHBOR", "ResizeNearestNeighborOptions"
            if all(o % i == 0 for o, i in zip(size, self.shape(src)[2:])):
                options = {"alignCorners": False, "halfPixelCenters": False}
        elif mode == "linear" and ctm in ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"):
            code, opts = "RESIZE_BILINEAR", "ResizeBilinearOptions"
        else:
            raise ExportError(f"{self.path}: Resize node {node.name!r} uses mode {mode!r} with {ctm!r}; nearest "
                              "and linear (half_pixel, align_corners, asymmetric) export")
        out = self.new(node.output[0], node.output[0], cl=True)
        self.g.add_op(code, [self.view(src, True), self.shape_const(f"{node.name}/size", list(size))], [out],
                      opts, node.name, **options)
