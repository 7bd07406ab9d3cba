"""The ONNX graph walker behind :mod:`sdk.optimize.tflite_export`: tensors, layouts (channels-first
ONNX ↔ channels-last TFLite), activation fusion and BatchNormalization folding. The op handlers
live in :mod:`sdk.optimize.tflite_ops`."""

from __future__ import annotations

from typing import Any

import numpy as np

from sdk.errors import ExportError
from sdk.optimize.tflite_ir import Graph

ACT = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}
FUSABLE = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "SUB", "MUL",
           "MAX_POOL_2D", "AVERAGE_POOL_2D"}
SAME, VALID = 0, 1
_NCHW_TO_NHWC = {0: 0, 1: 3, 2: 1, 3: 2}
_NCL_TO_N1LC = {0: 0, 1: 3, 2: 2}


def _same_pads(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


class ConverterBase:
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
                                  "the TFLite export; supported: " + ", ".join(self.supported()))
            handler(n)
        for name in self.graph_outputs:  # rank >= 3 outputs are channels-last (NHWC, NLC)
            if name not in self.t:
                raise ExportError(f"{self.path}: graph output {name!r} has no producer the exporter knows")
            idx = self.view(name, True)
            if self.rank(name) == 3:
                s = self.shape(name)
                idx = self.reshape(idx, [s[0], s[2], s[1]], f"{name}/out")
            self.g.outputs.append(idx)
        return self.g

    def axis(self, name: str, axis: int, cl: bool) -> int:
        """ONNX axis of tensor ``name`` → the axis in the TFLite tensor (layout ``cl``)."""
        r = self.rank(name)
        axis %= r
        if not cl or r < 3:
            return axis
        return (_NCHW_TO_NHWC if r == 4 else _NCL_TO_N1LC)[axis]

    def layout_const(self, label: str, c: np.ndarray, out_rank: int, cl: bool) -> int:
        """A constant operand broadcast to ``out_rank`` in the layout of the other operand."""
        c = c.astype(np.float32).reshape((1,) * (out_rank - c.ndim) + c.shape)
        if cl and out_rank == 4:
            c = c.transpose(0, 2, 3, 1)
        elif cl and out_rank == 3:
            c = c.transpose(0, 2, 1)[:, None]
        return self.g.add_tensor(label, (), np.ascontiguousarray(c))

    @classmethod
    def supported(cls) -> list[str]:
        return sorted(n[3:] for n in dir(cls) if n.startswith("op_")) + ["Constant"]

    def attrs(self, node: Any) -> dict[str, Any]:
        return {a.name: self._onnx.helper.get_attribute_value(a) for a in node.attribute}

    def fuse_activation(self, node: Any, op: Any, cl: bool) -> None:
        """Register ``node``'s output, absorbing a single following Relu/Clip into ``op``."""
        out_name = node.output[0]
        users = self.consumers.get(out_name, [])
        if len(users) == 1 and out_name not in self.graph_outputs and op.code in FUSABLE:
            act = self.activation_of(users[0])
            if act in ACT:
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
        return {(0.0, 6.0): "RELU6", (0.0, np.inf): "RELU", (-1.0, 1.0): "RELU_N1_TO_1",
                (0.0, 1.0): "RELU_0_TO_1"}.get(self.clip_range(node))

    def clip_range(self, node: Any) -> tuple[float, float] | None:
        """(min, max) of a Clip with constant bounds (None when a bound is computed)."""
        lo, hi = self.clip_bound(node, 1), self.clip_bound(node, 2)
        return (lo, hi) if isinstance(lo, float) and isinstance(hi, float) else None

    def clip_bound(self, node: Any, i: int) -> float | str:
        """Clip bound ``i`` (1 = min, 2 = max): a float, or the name of a computed tensor."""
        if len(node.input) > i and node.input[i]:
            name = node.input[i]
            return float(self.consts[name].reshape(-1)[0]) if name in self.consts else name
        return float(self.attrs(node).get("min" if i == 1 else "max", -np.inf if i == 1 else np.inf))

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
