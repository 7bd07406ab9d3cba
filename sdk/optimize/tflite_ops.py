"""ONNX op handlers of the TFLite export (one ``op_<OnnxOp>`` method per supported op)."""

from __future__ import annotations

from typing import Any

import numpy as np

from sdk.errors import ExportError
from sdk.optimize.tflite_convert import _NCHW_TO_NHWC, _NCL_TO_N1LC, SAME, VALID, _same_pads
from sdk.optimize.tflite_ops_math import MathOps
from sdk.optimize.tflite_ops_shape import ShapeOps


class Converter(ShapeOps, MathOps):
    def spatial(self, node: Any, k: list[int]) -> tuple[list[int], list[int], list[int], list[int]]:
        """(kernel, strides, dilations, pads[top, left, bottom, right]) as 2-D values."""
        a = self.attrs(node)
        nd = len(k)
        strides = list(a.get("strides", [1] * nd))
        dil = list(a.get("dilations", [1] * nd))
        pads = list(a.get("pads", [0] * 2 * nd))
        auto = a.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        if a.get("ceil_mode", 0):
            raise ExportError(f"{self.path}: {node.op_type} node {node.name!r} uses ceil_mode=1, "
                              "which TFLite pooling cannot express; export with ceil_mode=False")
        if nd == 1:
            k, strides, dil, pads = [1, k[0]], [1, strides[0]], [1, dil[0]], [0, pads[0], 0, pads[1]]
        in_shape = self.cl_shape(self.shape(node.input[0]))
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            pads = [None] * 4  # type: ignore[list-item]
            for i in range(2):
                pads[i], pads[i + 2] = _same_pads(in_shape[1 + i], k[i], strides[i], dil[i])
        elif auto == "VALID":
            pads = [0, 0, 0, 0]
        return list(k), strides, dil, pads

    def padding(self, node: Any, x: int, k: list[int], s: list[int], d: list[int], pads: list[int],
                pad_value: float | None = 0.0, allow_same: bool = True) -> tuple[int, int]:
        """Return (input tensor, TFLite padding), inserting a PAD op for non-SAME explicit pads."""
        if not any(pads):
            return x, VALID
        shp = self.g.tensors[x].shape
        same = [_same_pads(shp[1 + i], k[i], s[i], d[i]) for i in range(2)]
        if allow_same and all((pads[i], pads[i + 2]) == same[i] for i in range(2)):
            return x, SAME
        if pad_value is None:
            raise ExportError(f"{self.path}: {node.op_type} node {node.name!r} has padding {pads} that "
                              "TFLite cannot express for this op")
        paddings = np.array([[0, 0], [pads[0], pads[2]], [pads[1], pads[3]], [0, 0]], np.int32)
        out_shape = [shp[0], shp[1] + pads[0] + pads[2], shp[2] + pads[1] + pads[3], shp[3]]
        out = self.g.add_tensor(f"{node.name}/pad", out_shape)
        inputs = [x, self.g.add_tensor(f"{node.name}/paddings", paddings.shape, paddings)]
        if pad_value == 0.0:
            self.g.add_op("PAD", inputs, [out], "PadOptions", onnx_node=node.name)
        else:
            inputs.append(self.g.add_tensor(f"{node.name}/pad_value", [1], np.array([pad_value], np.float32)))
            self.g.add_op("PADV2", inputs, [out], "PadV2Options", onnx_node=node.name)
        return out, VALID

    def op_Conv(self, node: Any) -> None:
        w = self.const(node.input[1]).astype(np.float32)
        if w.ndim not in (3, 4):
            raise ExportError(f"{self.path}: Conv node {node.name!r} is {w.ndim - 2}-D; only 1-D and 2-D convs export")
        if w.ndim == 3:
            w = w[:, :, None, :]
        cout, cin_g = w.shape[:2]
        group = int(self.attrs(node).get("group", 1))
        cin = cin_g * group
        bias = (self.const(node.input[2]).astype(np.float32) if len(node.input) > 2 and node.input[2]
                else np.zeros(cout, np.float32))
        k, s, d, pads = self.spatial(node, list(self.const(node.input[1]).shape[2:]))
        x, padding = self.padding(node, self.view(node.input[0], True), k, s, d, pads)
        out = self.new(node.output[0], node.output[0], cl=True)
        b = self.g.add_tensor(f"{node.name}/bias", [cout], bias)
        common = {"padding": padding, "strideH": s[0], "strideW": s[1], "dilationHFactor": d[0],
                  "dilationWFactor": d[1]}
        if group == 1:
            wt = self.g.add_tensor(f"{node.name}/weights", (), w.transpose(0, 2, 3, 1))  # OHWI
            op = self.g.add_op("CONV_2D", [x, wt, b], [out], "Conv2DOptions", node.name, **common)
        elif group == cin and cin_g == 1:
            wt = self.g.add_tensor(f"{node.name}/weights", (), w.transpose(1, 2, 3, 0))  # 1HWO
            op = self.g.add_op("DEPTHWISE_CONV_2D", [x, wt, b], [out], "DepthwiseConv2DOptions", node.name,
                               depthMultiplier=cout // cin, **common)
        else:
            raise ExportError(f"{self.path}: Conv node {node.name!r} is a grouped conv (group={group}); only "
                              "plain and depthwise convs export to TFLite")
        self.fuse_activation(node, op, cl=True)

    def fc(self, node: Any, a_name: str, weights: np.ndarray, bias: np.ndarray, out_name: str) -> Any:
        """FULLY_CONNECTED; a rank > 2 input keeps its leading dims (``keepNumDims``)."""
        x = self.view(a_name, False)
        out = self.new(out_name, out_name, cl=False)
        w = self.g.add_tensor(f"{node.name}/weights", (), weights.astype(np.float32))
        b = self.g.add_tensor(f"{node.name}/bias", (), bias.astype(np.float32).reshape(-1))
        return self.g.add_op("FULLY_CONNECTED", [x, w, b], [out], "FullyConnectedOptions", node.name,
                             keepNumDims=self.rank(a_name) > 2)

    def op_Gemm(self, node: Any) -> None:
        a = self.attrs(node)
        if a.get("transA", 0):
            raise ExportError(f"{self.path}: Gemm node {node.name!r} has transA=1, which does not export")
        w = self.const(node.input[1]) * a.get("alpha", 1.0)
        w = w if a.get("transB", 0) else w.T
        bias = (np.broadcast_to(self.const(node.input[2]) * a.get("beta", 1.0), (w.shape[0],))
                if len(node.input) > 2 and node.input[2] else np.zeros(w.shape[0], np.float32))
        op = self.fc(node, node.input[0], w, bias, node.output[0])
        self.fuse_activation(node, op, cl=False)

    def op_MatMul(self, node: Any) -> None:
        w = self.const(node.input[1])
        if w.ndim != 2:
            raise ExportError(f"{self.path}: MatMul node {node.name!r} needs a constant 2-D right operand")
        a_name, out_name, bias = node.input[0], node.output[0], np.zeros(w.shape[1], np.float32)
        users = self.consumers.get(out_name, [])
        if len(users) == 1 and users[0].op_type == "Add" and out_name not in self.graph_outputs:
            other = [i for i in users[0].input if i != out_name]
            if len(other) == 1 and other[0] in self.consts and self.consts[other[0]].size == w.shape[1]:
                bias = self.consts[other[0]].reshape(-1)
                self.skip.add(id(users[0]))
                node = users[0]
                out_name = node.output[0]
        op = self.fc(node, a_name, w.T, bias, out_name)
        self.fuse_activation(node, op, cl=False)

    def elementwise(self, node: Any, code: str, options: str | None) -> None:
        a_name, b_name = node.input[0], node.input[1]
        out_rank = len(self.shape(node.output[0]))
        cl = out_rank >= 3 and any(self.t.get(n, (0, False))[1] for n in (a_name, b_name) if n not in self.consts)
        idx = []
        for name in (a_name, b_name):
            if name in self.consts:
                idx.append(self.layout_const(f"{node.name}/{name}", self.consts[name], out_rank, cl))
            else:
                if self.rank(name) != out_rank:
                    raise ExportError(f"{self.path}: {node.op_type} node {node.name!r} broadcasts tensors of "
                                      "different rank, which the TFLite export does not handle")
                idx.append(self.view(name, cl))
        out = self.new(node.output[0], node.output[0], cl=cl)
        op = self.g.add_op(code, idx, [out], options, node.name)
        self.fuse_activation(node, op, cl=cl)

    def op_Add(self, node: Any) -> None:
        self.elementwise(node, "ADD", "AddOptions")

    def op_Sub(self, node: Any) -> None:
        self.elementwise(node, "SUB", "SubOptions")

    def op_Mul(self, node: Any) -> None:
        self.elementwise(node, "MUL", "MulOptions")

    def pool(self, node: Any, code: str) -> None:
        k, s, d, pads = self.spatial(node, list(self.attrs(node)["kernel_shape"]))
        include_pad = self.attrs(node).get("count_include_pad", 0)
        pad_value = -3.0e38 if code == "MAX_POOL_2D" else (0.0 if include_pad else None)
        x, padding = self.padding(node, self.view(node.input[0], True), k, s, d, pads, pad_value,
                                  allow_same=not include_pad)  # TFLite's SAME average excludes the padding
        out = self.new(node.output[0], node.output[0], cl=True)
        op = self.g.add_op(code, [x], [out], "Pool2DOptions", node.name, padding=padding, strideH=s[0],
                           strideW=s[1], filterHeight=k[0], filterWidth=k[1])
        self.fuse_activation(node, op, cl=True)

    def op_MaxPool(self, node: Any) -> None:
        if len(node.output) > 1 and node.output[1]:
            raise ExportError(f"{self.path}: MaxPool node {node.name!r} returns indices, which do not export")
        self.pool(node, "MAX_POOL_2D")

    def op_AveragePool(self, node: Any) -> None:
        self.pool(node, "AVERAGE_POOL_2D")

    def mean(self, node: Any, axes: list[int], keep: bool, code: str = "MEAN") -> None:
        r = self.rank(node.input[0])
        axes = sorted(a % r for a in axes)
        cl = self.t[node.input[0]][1] and r >= 3
        if cl and not keep and not (set(axes) >= set(range(2, r)) or axes == [1]):
            cl = False
        src = self.view(node.input[0], cl)
        if cl:
            axes = sorted((_NCHW_TO_NHWC if r == 4 else _NCL_TO_N1LC)[a] for a in axes)
            if r == 3 and not keep and axes == [3]:
                axes = [1, 3]  # also drop the H = 1 axis
        out = self.new(node.output[0], node.output[0], cl=cl and keep)
        ax = self.g.add_tensor(f"{node.name}/axes", (), np.array(axes, np.int32))
        self.g.add_op(code, [src, ax], [out], "ReducerOptions", node.name, keepDims=bool(keep))

    def op_GlobalAveragePool(self, node: Any) -> None:
        self.mean(node, list(range(2, self.rank(node.input[0]))), True)

    def op_ReduceMean(self, node: Any) -> None:
        a = self.attrs(node)
        axes = a.get("axes")
        if axes is None and len(node.input) > 1 and node.input[1]:
            axes = self.const(node.input[1]).tolist()
        self.mean(node, list(axes if axes is not None else range(self.rank(node.input[0]))),
                  bool(a.get("keepdims", 1)))

    def reshape_node(self, node: Any) -> None:
        src, r = node.input[0], self.rank(node.input[0])
        spatial_one = r >= 3 and int(np.prod(self.shape(src)[2:])) == 1
        idx, cl = self.t[src]
        x = idx if (cl and spatial_one) else self.view(src, False)
        target = self.shape(node.output[0])
        out = self.new(node.output[0], node.output[0], cl=False)
        self.g.add_op("RESHAPE", [x, self.shape_const(f"{node.name}/shape", target)], [out],
                      "ReshapeOptions", node.name, newShape=np.array(target, np.int32))

    def op_Flatten(self, node: Any) -> None:
        self.reshape_node(node)

    def op_Reshape(self, node: Any) -> None:
        self.reshape_node(node)

    def op_Softmax(self, node: Any) -> None:
        r = self.rank(node.input[0])
        axis = int(self.attrs(node).get("axis", -1 if self.opset >= 13 else 1)) % r
        if self.opset < 13 and axis != r - 1:
            raise ExportError(f"{self.path}: Softmax node {node.name!r} (opset {self.opset}) flattens from axis "
                              f"{axis}; upgrade the model to opset 13 (ember optimize does) to export it")
        idx, cl = self.t[node.input[0]]
        if (cl and axis == 1) or (not cl and axis == r - 1) or r < 3 and axis == r - 1:
            out = self.new(node.output[0], node.output[0], cl=cl)
            self.g.add_op("SOFTMAX", [idx], [out], "SoftmaxOptions", node.name, beta=1.0)
            return
        perm = list(range(r))  # softmax over another axis: move it last and back
        perm[axis], perm[-1] = perm[-1], perm[axis]
        moved = self.transpose(self.view(node.input[0], False), perm, f"{node.name}/moved")
        soft = self.g.add_tensor(f"{node.name}/softmax", self.g.tensors[moved].shape)
        self.g.add_op("SOFTMAX", [moved], [soft], "SoftmaxOptions", node.name, beta=1.0)
        out = self.new(node.output[0], node.output[0], cl=False)
        self.g.add_op("TRANSPOSE", [soft, self.shape_const(f"{node.name}/back", perm)], [out], "TransposeOptions",
                      node.name)

    def op_Relu(self, node: Any) -> None:
        self.activation(node, "RELU")

    def op_Clip(self, node: Any) -> None:
        act = self.activation_of(node)
        if act is not None:
            self.activation(node, act)
            return
        idx, cl = self.t[node.input[0]]  # any other range: MAXIMUM with the low, MINIMUM with the high bound
        shape = self.g.tensors[idx].shape
        for i, code in ((1, "MAXIMUM"), (2, "MINIMUM")):
            bound = self.clip_bound(node, i)
            if isinstance(bound, float) and not np.isfinite(bound):
                continue
            c = (self.g.add_tensor(f"{node.name}/{code.lower()}_bound", (), np.array([bound], np.float32))
                 if isinstance(bound, float) else self.view(bound, False))
            nxt = self.g.add_tensor(f"{node.name}/{code.lower()}", shape)
            self.g.add_op(code, [idx, c], [nxt], onnx_node=node.name)
            idx = nxt
        self.t[node.output[0]] = (idx, cl)

    def activation(self, node: Any, code: str) -> None:
        idx, cl = self.t[node.input[0]]
        out = self.new(node.output[0], node.output[0], cl=cl)
        self.g.add_op(code, [idx], [out], onnx_node=node.name)

    def op_Identity(self, node: Any) -> None:
        if node.input[0] in self.consts:  # torch writes shared equal initializers as Identity of one
            self.consts[node.output[0]] = self.consts[node.input[0]]
        else:
            self.t[node.output[0]] = self.t[node.input[0]]

    op_Dropout = op_Identity
