"""ONNX → ``.tflite`` without TensorFlow: fp32, or full-integer int8 calibrated on sample inputs.

Layout: ONNX is channels-first, TFLite channels-last. Rank-4 inputs ``[N, C, H, W]`` become
``[N, H, W, C]``, rank-3 inputs ``[N, C, L]`` become ``[N, L, C]`` (1-D layers run as 2-D ones
with H = 1); outputs of rank ≥ 3 are channels-last too (see :func:`to_tflite_layout`). Rank-2
tensors are unchanged. Batch size is fixed to 1.

Supported ONNX ops: Conv (1-D/2-D, depthwise), Gemm, MatMul(+Add), Relu, Clip (→ RELU6/RELU),
Add/Sub/Mul, MaxPool, AveragePool, GlobalAveragePool, ReduceMean, Flatten, Reshape, Softmax,
BatchNormalization (folded into the preceding Conv), Identity/Dropout. Any other op raises
:class:`~sdk.errors.ExportError` naming it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from sdk.errors import ExportError
from sdk.optimize.tflite_ir import Graph, serialize

ACT = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}
FUSABLE = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "SUB", "MUL",
           "MAX_POOL_2D", "AVERAGE_POOL_2D"}
SAME, VALID = 0, 1
_NCHW_TO_NHWC = {0: 0, 1: 3, 2: 1, 3: 2}
_NCL_TO_N1LC = {0: 0, 1: 3, 2: 2}


def to_tflite_layout(x: np.ndarray) -> np.ndarray:
    """An ONNX-layout array as the converted model expects it (NCHW → NHWC, NCL → NLC)."""
    x = np.asarray(x)
    if x.ndim == 4:
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    if x.ndim == 3:
        return np.ascontiguousarray(x.transpose(0, 2, 1))
    return x


def from_tflite_layout(x: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_tflite_layout` (NHWC → NCHW, NLC → NCL)."""
    x = np.asarray(x)
    if x.ndim == 4:
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    if x.ndim == 3:
        return np.ascontiguousarray(x.transpose(0, 2, 1))
    return x


def onnx_to_tflite(onnx_path: str | Path, out_path: str | Path, int8: bool = False,
                   calibration: Iterable[Any] | None = None) -> Path:
    """Convert ``onnx_path`` to a ``.tflite`` at ``out_path`` and return the path.

    With ``int8=True`` the model is fully integer (int8 input/output, per-channel int8 conv
    weights, int32 biases), calibrated on ``calibration``: float arrays in the ONNX (NCHW) layout,
    one per input (or dicts input name → array for several inputs).
    """
    graph = onnx_to_graph(onnx_path)
    if int8:
        if calibration is None:
            raise ExportError(f"{onnx_path}: int8 export needs calibration data (float NCHW arrays)")
        from sdk.optimize.tflite_quant import quantize_graph
        quantize_graph(graph, calibration)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(serialize(graph, description=f"ember: {Path(onnx_path).name}"))
    return out


def onnx_to_graph(onnx_path: str | Path) -> Graph:
    """Convert an ONNX file to a float :class:`Graph` (the layout described in the module doc)."""
    import onnx

    try:
        model = onnx.load(str(onnx_path))
    except Exception as e:
        raise ExportError(f"{onnx_path}: not a readable ONNX model ({e})") from e
    return _Converter(model, str(onnx_path)).run()


def _same_pads(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


class _Converter:
    def __init__(self, model: Any, path: str) -> None:
        import onnx
        from onnx import numpy_helper, shape_inference

        self.path = path
        model = shape_inference.infer_shapes(model)
        g = model.graph
        self.nodes = list(g.node)
        self.consts: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        self.shapes: dict[str, list[int]] = {}
        for vi in list(g.input) + list(g.value_info) + list(g.output):
            dims = vi.type.tensor_type.shape.dim
            self.shapes[vi.name] = [d.dim_value if d.dim_value > 0 else 1 for d in dims]
        self.graph_inputs = [i for i in g.input if i.name not in self.consts]
        self.graph_outputs = [o.name for o in g.output]
        self._onnx = onnx
        for n in [n for n in self.nodes if n.op_type == "Constant"]:
            value = onnx.helper.get_attribute_value(n.attribute[0])
            self.consts[n.output[0]] = (numpy_helper.to_array(value) if isinstance(value, onnx.TensorProto)
                                        else np.array(value, np.float32))
            self.nodes.remove(n)
        self.index_consumers()
        self.fold_batchnorm()
        self.index_consumers()
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
        self.g = Graph()
        self.t: dict[str, tuple[int, bool]] = {}  # ONNX name → (tensor index, channels-last?)
        self.views: dict[tuple[str, bool], int] = {}
        self.skip: set[int] = set()

    def index_consumers(self) -> None:
        self.consumers: dict[str, list[Any]] = {}
        for n in self.nodes:
            for name in n.input:
                self.consumers.setdefault(name, []).append(n)

    # ---- tensors and layouts -------------------------------------------------------------
    def rank(self, name: str) -> int:
        return len(self.shapes.get(name, self.const(name).shape if name in self.consts else []))

    def shape(self, name: str) -> list[int]:
        if name in self.consts:
            return list(self.consts[name].shape)
        if name not in self.shapes:
            raise ExportError(f"{self.path}: shape of tensor {name!r} is unknown (run onnx shape inference "
                              "or export with static input shapes)")
        return self.shapes[name]

    def const(self, name: str) -> np.ndarray:
        if name not in self.consts:
            raise ExportError(f"{self.path}: {name!r} must be a constant (initializer) for the TFLite export")
        return self.consts[name]

    @staticmethod
    def cl_shape(shape: list[int]) -> list[int]:
        if len(shape) == 4:
            return [shape[0], shape[2], shape[3], shape[1]]
        if len(shape) == 3:
            return [shape[0], 1, shape[2], shape[1]]
        return list(shape)

    def new(self, name: str, onnx_name: str, cl: bool) -> int:
        shape = self.shape(onnx_name)
        idx = self.g.add_tensor(name, self.cl_shape(shape) if cl else shape)
        self.t[onnx_name] = (idx, cl)
        return idx

    def shape_const(self, name: str, values: list[int]) -> int:
        return self.g.add_tensor(name, [len(values)], np.array(values, np.int32))

    def reshape(self, src: int, shape: list[int], name: str) -> int:
        out = self.g.add_tensor(name, shape)
        self.g.add_op("RESHAPE", [src, self.shape_const(name + "/shape", shape)], [out],
                      "ReshapeOptions", newShape=np.array(shape, np.int32))
        return out

    def transpose(self, src: int, perm: list[int], name: str) -> int:
        shape = [self.g.tensors[src].shape[p] for p in perm]
        out = self.g.add_tensor(name, shape)
        self.g.add_op("TRANSPOSE", [src, self.shape_const(name + "/perm", perm)], [out], "TransposeOptions")
        return out

    def view(self, name: str, cl: bool) -> int:
        """Tensor index of ONNX tensor ``name`` in the wanted layout (inserting a transpose)."""
        if name not in self.t:
            raise ExportError(f"{self.path}: tensor {name!r} has no producer the exporter knows")
        idx, is_cl = self.t[name]
        r = self.rank(name)
        if is_cl == cl or r < 3:
            return idx
        if (name, cl) in self.views:
            return self.views[(name, cl)]
        shape = self.shape(name)
        if cl:  # ONNX layout → channels-last
            out = self.transpose(idx, [0, 2, 3, 1] if r == 4 else [0, 2, 1], f"{name}/nhwc")
            if r == 3:
                out = self.reshape(out, self.cl_shape(shape), f"{name}/n1lc")
        else:
            src = idx if r == 4 else self.reshape(idx, [shape[0], shape[2], shape[1]], f"{name}/nlc")
            out = self.transpose(src, [0, 3, 1, 2] if r == 4 else [0, 2, 1], f"{name}/nchw")
        self.views[(name, cl)] = out
        return out

    # ---- driver ----------------------------------------------------------------------------
    def run(self) -> Graph:
        for vi in self.graph_inputs:
            shape = self.shape(vi.name)
            if len(shape) == 3:
                idx = self.g.add_tensor(vi.name, [shape[0], shape[2], shape[1]])
                self.g.inputs.append(idx)
                self.t[vi.name] = (self.reshape(idx, self.cl_shape(shape), f"{vi.name}/n1lc"), True)
            else:
                self.g.inputs.append(self.new(vi.name, vi.name, cl=len(shape) == 4))
        for n in self.nodes:
            if id(n) in self.skip:
                continue
            handler = getattr(self, f"op_{n.op_type}", None)
            if handler is None:
                raise ExportError(f"{self.path}: ONNX op {n.op_type} (node {n.name!r}) is not supported by "
                                  "the TFLite export; supported: " + ", ".join(SUPPORTED))
            handler(n)
        for name in self.graph_outputs:
            idx, cl = self.t[name]
            if cl and self.rank(name) == 3:
                s = self.shape(name)
                idx = self.reshape(idx, [s[0], s[2], s[1]], f"{name}/out")
            self.g.outputs.append(idx)
        return self.g

    def attrs(self, node: Any) -> dict[str, Any]:
        return {a.name: self._onnx.helper.get_attribute_value(a) for a in node.attribute}

    def fuse_activation(self, node: Any, op: Any, cl: bool) -> None:
        """Register ``node``'s output, absorbing a single following Relu/Clip into ``op``."""
        out_name = node.output[0]
        users = self.consumers.get(out_name, [])
        if len(users) == 1 and out_name not in self.graph_outputs and op.code in FUSABLE:
            act = self.activation_of(users[0])
            if act is not None:
                op.options["fusedActivationFunction"] = ACT[act]
                self.skip.add(id(users[0]))
                self.t[users[0].output[0]] = (op.outputs[0], cl)
                self.shapes.setdefault(users[0].output[0], self.shape(out_name))
        self.t[out_name] = (op.outputs[0], cl)

    def activation_of(self, node: Any) -> str | None:
        if node.op_type == "Relu":
            return "RELU"
        if node.op_type != "Clip":
            return None
        a = self.attrs(node)
        lo, hi = a.get("min", -np.inf), a.get("max", np.inf)
        if len(node.input) > 1 and node.input[1]:
            lo = float(self.const(node.input[1]))
        if len(node.input) > 2 and node.input[2]:
            hi = float(self.const(node.input[2]))
        return {(0.0, 6.0): "RELU6", (0.0, np.inf): "RELU", (-1.0, 1.0): "RELU_N1_TO_1"}.get((lo, hi))

    # ---- ops ------------------------------------------------------------------------------
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
                pad_value: float | None = 0.0) -> tuple[int, int]:
        """Return (input tensor, TFLite padding), inserting a PAD op for non-SAME explicit pads."""
        if not any(pads):
            return x, VALID
        shp = self.g.tensors[x].shape
        same = [_same_pads(shp[1 + i], k[i], s[i], d[i]) for i in range(2)]
        if all((pads[i], pads[i + 2]) == same[i] for i in range(2)):
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
        if self.rank(a_name) != 2:
            raise ExportError(f"{self.path}: {node.op_type} node {node.name!r} has a rank-{self.rank(a_name)} "
                              "input; only 2-D inputs export (add a Flatten first)")
        x = self.view(a_name, False)
        out = self.new(out_name, out_name, cl=False)
        w = self.g.add_tensor(f"{node.name}/weights", (), weights.astype(np.float32))
        b = self.g.add_tensor(f"{node.name}/bias", (), bias.astype(np.float32).reshape(-1))
        return self.g.add_op("FULLY_CONNECTED", [x, w, b], [out], "FullyConnectedOptions", node.name)

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

    def elementwise(self, node: Any, code: str, options: str) -> None:
        a_name, b_name = node.input[0], node.input[1]
        out_rank = len(self.shape(node.output[0]))
        cl = out_rank >= 3 and any(self.t.get(n, (0, False))[1] for n in (a_name, b_name) if n not in self.consts)
        idx = []
        for name in (a_name, b_name):
            if name in self.consts:
                c = self.consts[name].astype(np.float32).reshape((1,) * (out_rank - self.consts[name].ndim)
                                                                 + self.consts[name].shape)
                if cl:
                    c = c.transpose(0, 2, 3, 1) if out_rank == 4 else c.transpose(0, 2, 1)[:, None]
                idx.append(self.g.add_tensor(f"{node.name}/{name}", (), np.ascontiguousarray(c)))
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
        x, padding = self.padding(node, self.view(node.input[0], True), k, s, d, pads, pad_value)
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

    def mean(self, node: Any, axes: list[int], keep: bool) -> None:
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
        self.g.add_op("MEAN", [src, ax], [out], "ReducerOptions", node.name, keepDims=bool(keep))

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
        idx, cl = self.t[node.input[0]]
        if not ((cl and axis == 1) or (not cl and axis == r - 1)) or (self.opset < 13 and r != 2):
            raise ExportError(f"{self.path}: Softmax node {node.name!r} over axis {axis} of a rank-{r} tensor "
                              "does not export; softmax over the last (or channel) axis only")
        out = self.new(node.output[0], node.output[0], cl=cl)
        self.g.add_op("SOFTMAX", [idx], [out], "SoftmaxOptions", node.name, beta=1.0)

    def op_Relu(self, node: Any) -> None:
        self.activation(node, "RELU")

    def op_Clip(self, node: Any) -> None:
        act = self.activation_of(node)
        if act is None:
            raise ExportError(f"{self.path}: Clip node {node.name!r} has a range other than [0, 6], [0, inf) "
                              "or [-1, 1], which does not export")
        self.activation(node, act)

    def activation(self, node: Any, code: str) -> None:
        idx, cl = self.t[node.input[0]]
        out = self.new(node.output[0], node.output[0], cl=cl)
        self.g.add_op(code, [idx], [out], onnx_node=node.name)

    def op_Identity(self, node: Any) -> None:
        self.t[node.output[0]] = self.t[node.input[0]]

    op_Dropout = op_Identity

    def op_BatchNormalization(self, node: Any) -> None:
        raise ExportError(f"{self.path}: BatchNormalization node {node.name!r} does not directly follow a "
                          "Conv, so it cannot be folded; export the model in eval mode with BN after convs")

    def fold_batchnorm(self) -> None:
        """Fold each BatchNormalization that follows a Conv (its only user) into the Conv's weights."""
        for bn in [n for n in self.nodes if n.op_type == "BatchNormalization"]:
            conv = next((n for n in self.nodes if bn.input[0] in n.output), None)
            if (conv is None or conv.op_type != "Conv" or conv.input[1] not in self.consts
                    or len(self.consumers.get(bn.input[0], [])) != 1 or bn.input[0] in self.graph_outputs
                    or not all(i in self.consts for i in bn.input[1:5])):
                continue
            gamma, beta, mean, var = (self.consts[i].astype(np.float32) for i in bn.input[1:5])
            eps = float(self.attrs(bn).get("epsilon", 1e-5))
            scale = gamma / np.sqrt(var + eps)
            w = self.consts[conv.input[1]].astype(np.float32)
            b = (self.consts[conv.input[2]].astype(np.float32) if len(conv.input) > 2 and conv.input[2]
                 else np.zeros(w.shape[0], np.float32))
            wname, bname = f"{conv.name}/w_bn", f"{conv.name}/b_bn"
            self.consts[wname] = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
            self.consts[bname] = (b - mean) * scale + beta
            del conv.input[1:]
            conv.input.extend([wname, bname])
            conv.output[0] = bn.output[0]
            self.nodes.remove(bn)


SUPPORTED = sorted(n[3:] for n in dir(_Converter) if n.startswith("op_")) + ["Constant"]
