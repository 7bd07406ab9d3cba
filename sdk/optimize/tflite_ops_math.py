"""Activations and arithmetic of the TFLite export: Sigmoid, Tanh, HardSigmoid/HardSwish,
LeakyRelu, PRelu, Max/Min, Div, Pow, Sqrt, Log, Exp, ReduceMax, standalone BatchNormalization,
ConvTranspose and float Cast."""

from __future__ import annotations

from typing import Any

import numpy as np

from sdk.errors import ExportError
from sdk.optimize.tflite_convert import VALID, ConverterBase

SAME_PADDING = 0


class MathOps(ConverterBase):
    def unary(self, node: Any, code: str, options: str | None = None, **opts: Any) -> Any:
        idx, cl = self.t[node.input[0]]
        out = self.new(node.output[0], node.output[0], cl=cl)
        return self.g.add_op(code, [idx], [out], options, node.name, **opts)

    def op_Sigmoid(self, node: Any) -> None:
        self.unary(node, "LOGISTIC")

    def op_Tanh(self, node: Any) -> None:
        self.unary(node, "TANH")

    def op_Sqrt(self, node: Any) -> None:
        self.unary(node, "SQRT")

    def op_Log(self, node: Any) -> None:
        self.unary(node, "LOG")

    def op_Exp(self, node: Any) -> None:
        self.unary(node, "EXP")

    def op_HardSwish(self, node: Any) -> None:
        self.unary(node, "HARD_SWISH")

    def op_LeakyRelu(self, node: Any) -> None:
        self.unary(node, "LEAKY_RELU", "LeakyReluOptions", alpha=float(self.attrs(node).get("alpha", 0.01)))

    def op_Cast(self, node: Any) -> None:
        if int(self.attrs(node)["to"]) != 1 or node.input[0] not in self.t:  # 1 = FLOAT
            raise ExportError(f"{self.path}: Cast node {node.name!r} casts to a non-float type, which does not "
                              "export")
        self.t[node.output[0]] = self.t[node.input[0]]

    def op_HardSigmoid(self, node: Any) -> None:
        """x·HardSigmoid(x) with alpha 1/6, beta 0.5 becomes one HARD_SWISH; otherwise
        clip(alpha·x + beta, 0, 1) as MUL, ADD, RELU_0_TO_1."""
        a = self.attrs(node)
        alpha, beta = float(a.get("alpha", 0.2)), float(a.get("beta", 0.5))
        x = node.input[0]
        users = self.consumers.get(node.output[0], [])
        if (abs(alpha - 1 / 6) < 1e-6 and beta == 0.5 and len(users) == 1 and users[0].op_type == "Mul"
                and x in users[0].input and node.output[0] in users[0].input
                and node.output[0] not in self.graph_outputs):
            self.skip.add(id(users[0]))
            idx, cl = self.t[x]
            out = self.new(users[0].output[0], users[0].output[0], cl=cl)
            self.g.add_op("HARD_SWISH", [idx], [out], onnx_node=users[0].name)
            return
        idx, cl = self.t[x]
        shape = self.g.tensors[idx].shape
        scaled = self.g.add_tensor(f"{node.name}/scaled", shape)
        self.g.add_op("MUL", [idx, self.g.add_tensor(f"{node.name}/alpha", (), np.array([alpha], np.float32))],
                      [scaled], "MulOptions", node.name)
        shifted = self.g.add_tensor(f"{node.name}/shifted", shape)
        self.g.add_op("ADD", [scaled, self.g.add_tensor(f"{node.name}/beta", (), np.array([beta], np.float32))],
                      [shifted], "AddOptions", node.name)
        out = self.new(node.output[0], node.output[0], cl=cl)
        self.g.add_op("RELU_0_TO_1", [shifted], [out], onnx_node=node.name)

    def op_PRelu(self, node: Any) -> None:
        idx, cl = self.t[node.input[0]]
        r = self.rank(node.input[0])
        slope = self.layout_const(f"{node.name}/slope", self.const(node.input[1]), r, cl)
        if cl and r == 3:
            raise ExportError(f"{self.path}: PRelu node {node.name!r} on a 1-D feature map does not export")
        out = self.new(node.output[0], node.output[0], cl=cl)
        self.g.tensors[slope].data = self.g.tensors[slope].data[0]  # type: ignore[index]  # no batch axis
        self.g.tensors[slope].shape = self.g.tensors[slope].data.shape  # type: ignore[union-attr]
        self.g.add_op("PRELU", [idx, slope], [out], onnx_node=node.name)

    def op_Max(self, node: Any) -> None:
        self.variadic(node, "MAXIMUM")

    def op_Min(self, node: Any) -> None:
        self.variadic(node, "MINIMUM")

    def variadic(self, node: Any, code: str) -> None:
        if len(node.input) != 2:
            raise ExportError(f"{self.path}: {node.op_type} node {node.name!r} has {len(node.input)} inputs; "
                              "two export")
        self.elementwise(node, code, None)  # type: ignore[attr-defined]

    def op_Div(self, node: Any) -> None:
        b = node.input[1]
        if b in self.consts:  # x / c → x · (1/c), which has an int8 kernel
            self.consts[f"{b}/reciprocal"] = (1.0 / self.consts[b].astype(np.float32)).astype(np.float32)
            node.input[1] = f"{b}/reciprocal"
            self.elementwise(node, "MUL", "MulOptions")  # type: ignore[attr-defined]
        else:
            self.elementwise(node, "DIV", "DivOptions")  # type: ignore[attr-defined]

    def op_Pow(self, node: Any) -> None:
        e = node.input[1]
        p = float(self.const(e).reshape(-1)[0]) if e in self.consts and self.consts[e].size == 1 else None
        if p == 2.0:
            idx, cl = self.t[node.input[0]]
            out = self.new(node.output[0], node.output[0], cl=cl)
            self.g.add_op("MUL", [idx, idx], [out], "MulOptions", node.name)
        elif p == 0.5:
            self.unary(node, "SQRT")
        elif p == 1.0:
            self.t[node.output[0]] = self.t[node.input[0]]
        else:
            self.elementwise(node, "POW", "PowOptions")  # type: ignore[attr-defined]

    def op_ReduceMax(self, node: Any) -> None:
        a = self.attrs(node)
        axes = a.get("axes")
        if axes is None and len(node.input) > 1 and node.input[1]:
            axes = self.const(node.input[1]).tolist()
        self.mean(node, list(axes if axes is not None else range(self.rank(node.input[0]))),  # type: ignore[attr-defined]
                  bool(a.get("keepdims", 1)), code="REDUCE_MAX")

    def op_BatchNormalization(self, node: Any) -> None:
        """A BatchNormalization not folded into a Conv: y = x·scale + shift, per channel."""
        gamma, beta, mean, var = (self.const(i).astype(np.float32) for i in node.input[1:5])
        scale = gamma / np.sqrt(var + float(self.attrs(node).get("epsilon", 1e-5)))
        idx, cl = self.t[node.input[0]]
        r = self.rank(node.input[0])
        shape = [1, -1] + [1] * (r - 2)
        s_idx = self.layout_const(f"{node.name}/scale", scale.reshape(shape), r, cl)
        b_idx = self.layout_const(f"{node.name}/shift", (beta - mean * scale).reshape(shape), r, cl)
        mid = self.g.add_tensor(f"{node.name}/scaled", self.g.tensors[idx].shape)
        self.g.add_op("MUL", [idx, s_idx], [mid], "MulOptions", node.name)
        out = self.new(node.output[0], node.output[0], cl=cl)
        self.g.add_op("ADD", [mid, b_idx], [out], "AddOptions", node.name)

    def op_ConvTranspose(self, node: Any) -> None:
        w = self.const(node.input[1]).astype(np.float32)  # [Cin, Cout/group, kH, kW]
        a = self.attrs(node)
        if w.ndim != 4 or int(a.get("group", 1)) != 1:
            raise ExportError(f"{self.path}: ConvTranspose node {node.name!r} must be 2-D with group=1 to export")
        if any(d != 1 for d in a.get("dilations", [1, 1])) or any(a.get("output_padding", [0, 0])):
            raise ExportError(f"{self.path}: ConvTranspose node {node.name!r} uses dilation or output_padding, "
                              "which do not export")
        k, s = list(w.shape[2:]), list(a.get("strides", [1, 1]))
        in_hw, out_shape = self.shape(node.input[0])[2:], self.shape(node.output[0])
        pads = list(a.get("pads", [0, 0, 0, 0]))
        padding = VALID
        if any(pads):
            totals = [(in_hw[i] - 1) * s[i] + k[i] - out_shape[2 + i] for i in range(2)]
            if [pads[0], pads[1]] != [t // 2 for t in totals]:
                raise ExportError(f"{self.path}: ConvTranspose node {node.name!r} has pads {pads} that TFLite's "
                                  "SAME/VALID padding cannot express")
            padding = SAME_PADDING
        cout = w.shape[1]
        bias = (self.const(node.input[2]).astype(np.float32) if len(node.input) > 2 and node.input[2]
                else np.zeros(cout, np.float32))
        x = self.view(node.input[0], True)
        out = self.new(node.output[0], node.output[0], cl=True)
        shape_t = self.shape_const(f"{node.name}/output_shape", self.cl_shape(out_shape))
        wt = self.g.add_tensor(f"{node.name}/weights", (), np.ascontiguousarray(w.transpose(1, 2, 3, 0)))  # OHWI
        b = self.g.add_tensor(f"{node.name}/bias", [cout], bias)
        self.g.add_op("TRANSPOSE_CONV", [shape_t, wt, x, b], [out], "TransposeConvOptions", node.name,
                      padding=padding, strideH=s[0], strideW=s[1])
