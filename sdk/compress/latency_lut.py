"""A per-layer latency lookup table measured on this device, and the latency surrogate of the search.

    lut = LatencyTable()                                 # ~/.cache/ember/latency_lut.json, this device's table
    lut.fit([net_a, net_b, net_c], input_shape=(1, 1, 49, 40))   # time a few whole models, fit the overhead
    lut.predict(net_d, input_shape=(1, 1, 49, 40))       # ms, without running net_d
    costs = model_costs(net_d, (1, 1, 49, 40), lut)      # latency, MACs, params, peak memory, energy

A model (a torch module, an ONNX file or ``ModelProto``) is exported to ONNX and cut into layers: every
node, with a following activation that ONNX Runtime fuses into it (Conv + Relu/Clip/...) kept with it.
Each distinct layer configuration (op, attributes, input and weight shapes: a conv, a depthwise conv,
a linear, a pool at one shape) becomes a one-layer ONNX model, timed once with ONNX Runtime at one
thread by the project's one timing loop (``sdk.util.timing.time_calls``), minus the time of an empty
(Identity) model, and cached in a JSON file under a key naming the device class, the ONNX Runtime
version and the thread count. ``predict = scale * sum(layer entries) + overhead_ms``: ``scale`` and the
per-model ``overhead_ms`` are fitted by least squares on whole models measured by the same loop
(``fit``); ``fit`` reports the mean absolute percentage error on those calibration models, and
``mape`` measures it on a separate set. MACs, parameters and peak activation memory come from
``sdk.optimize.graph_stats`` (the counters behind ``ember profile``), energy from
``sdk.optimize.energy`` (latency × the device's power figure).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sdk.errors import ModelError
from sdk.util.files import write_text_atomic
from sdk.util.timing import time_calls

FUSED_ACTIVATIONS = ("Relu", "Clip", "LeakyRelu", "Sigmoid", "HardSigmoid", "Tanh")  # ORT's Conv fusions
SKIPPED = ("Constant", "Identity")
DEFAULT_PATH = Path(os.environ.get("EMBER_CACHE", Path.home() / ".cache" / "ember")) / "latency_lut.json"
Model = Any  # a torch.nn.Module, an ONNX path or an onnx.ModelProto


@dataclass
class Costs:
    """What a candidate costs on this device (latency from the surrogate unless ``measured``)."""

    latency_ms: float
    macs: int
    params: int
    peak_activation_bytes: int
    energy_mj: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Fit:
    scale: float = 1.0
    overhead_ms: float = 0.0
    calibration_mape: float | None = None
    models: int = 0


def table_key(threads: int = 1) -> str:
    """The device class, the ONNX Runtime version and the thread count: one table each."""
    import onnxruntime as ort

    from sdk.device import device_class

    return f"{device_class()}/onnxruntime-{ort.__version__}/threads{threads}"


# ---- models to layers --------------------------------------------------------------------------------
def to_onnx(model: Model, input_shape: Sequence[int] | None = None) -> Any:
    """An ONNX ``ModelProto`` with inferred shapes for a torch module (needs ``input_shape``), a path or a proto."""
    from onnx import shape_inference

    from sdk.optimize.graph_stats import load_inferred

    if isinstance(model, (str, os.PathLike)):
        return load_inferred(model)
    if hasattr(model, "graph"):
        return shape_inference.infer_shapes(model)
    if input_shape is None:
        raise ModelError("a torch model needs its input shape to be measured (e.g. input_shape=(1, 1, 49, 40))")
    from sdk.compress.folder import export_onnx

    with tempfile.TemporaryDirectory() as tmp:
        return load_inferred(export_onnx(model, Path(tmp) / "m.onnx", np.zeros(tuple(input_shape), np.float32)))


def _attr(a: Any) -> Any:
    from onnx import helper

    v = helper.get_attribute_value(a)
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return list(v) if isinstance(v, (list, tuple)) else v


def layers_of(proto: Any) -> list[_Layer]:
    from sdk.optimize.graph_stats import tensor_infos

    consts, infos = constant_values(proto), tensor_infos(proto)
    return [_Layer(g, proto, consts, infos) for g in layer_groups(proto)]


def layer_groups(model: Any) -> list[list[Any]]:
    """The graph's nodes cut into layers (a node, plus the activation ORT fuses into a Conv)."""
    g = model.graph
    users: dict[str, list[Any]] = {}
    for node in g.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    outputs = {o.name for o in g.output}
    groups: list[list[Any]] = []
    taken: set[int] = set()
    for node in g.node:
        if id(node) in taken or node.op_type in SKIPPED:
            continue
        group = [node]
        nxt = users.get(node.output[0], []) if node.output else []
        if node.op_type == "Conv" and len(nxt) == 1 and nxt[0].op_type in FUSED_ACTIVATIONS \
                and node.output[0] not in outputs:
            group.append(nxt[0])
            taken.add(id(nxt[0]))
        groups.append(group)
    return groups


def constant_values(model: Any) -> dict[str, np.ndarray]:
    """Initializers, Constant node outputs and Identity copies of them (the exporter's shared weights)."""
    from onnx import numpy_helper

    vals = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            t = next((a.t for a in node.attribute if a.name == "value"), None)
            if t is not None:
                vals[node.output[0]] = numpy_helper.to_array(t)
        elif node.op_type == "Identity" and node.input[0] in vals:
            vals[node.output[0]] = vals[node.input[0]]
    return vals


class _Layer:
    """One layer: its cache key and a builder for its one-layer ONNX model."""

    def __init__(self, group: list[Any], model: Any, consts: dict[str, np.ndarray],
                 infos: dict[str, tuple[list[int], int]]) -> None:
        made = {o for n in group for o in n.output}
        self.nodes, self.opset = group, list(model.opset_import)
        self.inputs: list[tuple[str, list[int], int]] = []  # data inputs: name, shape, elem type
        self.weights: dict[str, np.ndarray] = {}
        desc: list[Any] = []
        for node in group:
            ins: list[Any] = []
            for name in node.input:
                if not name or name in made:
                    ins.append("<prev>" if name else "")
                elif name in consts:
                    arr = self.weights[name] = consts[name]
                    ins.append(("w", list(arr.shape), arr.tolist() if arr.dtype.kind in "iub" else arr.dtype.str))
                else:
                    shape, elem = infos.get(name, ([], 4))[0], _elem_type(model, name)
                    self.inputs.append((name, shape, elem))
                    ins.append(("x", shape, elem))
            desc.append([node.op_type, node.domain, sorted((a.name, _attr(a)) for a in node.attribute), ins])
        last = group[-1].output[0]
        self.output = (last, infos.get(last, ([], 4))[0], _elem_type(model, last))
        self.key = json.dumps(desc, separators=(",", ":"), default=str)

    def save(self, path: Path) -> Path:
        """Write the one-layer model (float weights random, integer constants such as shapes kept)."""
        import onnx
        from onnx import helper, numpy_helper

        rng = np.random.default_rng(0)
        inits = [numpy_helper.from_array(
            (rng.standard_normal(a.shape) * 0.1).astype(a.dtype) if a.dtype.kind == "f" else a, name)
            for name, a in self.weights.items()]
        ins = [helper.make_tensor_value_info(n, t, s) for n, s, t in self.inputs]
        out = helper.make_tensor_value_info(self.output[0], self.output[2], self.output[1])
        nodes = [n for n in self.nodes]
        graph = helper.make_graph(nodes, "layer", ins, [out], inits)
        m = helper.make_model(graph, opset_imports=self.opset)
        m.ir_version = min(m.ir_version, 10)
        onnx.save(m, str(path))
        return path

    def feed(self) -> dict[str, np.ndarray]:
        from onnx import helper

        rng = np.random.default_rng(0)
        return {n: rng.random(s).astype(helper.tensor_dtype_to_np_dtype(t)) for n, s, t in self.inputs}


def model_feed(model: Any) -> dict[str, np.ndarray]:
    """Random inputs for every data input of an ONNX model (unknown dimensions as 1)."""
    from onnx import helper

    inits = {i.name for i in model.graph.initializer}
    rng = np.random.default_rng(0)
    return {i.name: rng.random([d.dim_value or 1 for d in i.type.tensor_type.shape.dim]).astype(
        helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type)) for i in model.graph.input if i.name not in inits}


def _elem_type(model: Any, name: str) -> int:
    from onnx import TensorProto

    for vi in list(model.graph.input) + list(model.graph.value_info) + list(model.graph.output):
        if vi.name == name:
            return vi.type.tensor_type.elem_type or TensorProto.FLOAT
    return TensorProto.FLOAT


def time_onnx(path: str | Path, feed: dict[str, np.ndarray], threads: int = 1, runs: int = 30,
              min_time_s: float = 0.05, stat: str = "p50") -> float:
    """Milliseconds per call of ``path`` in ONNX Runtime's CPU provider at ``threads`` threads, through the
    project's timing loop. Inputs and outputs are bound once to preallocated buffers (I/O binding), so a
    layer timed alone pays no per-call allocation of its output that it would not pay inside a model."""
    import onnxruntime as ort

    from sdk.runtime.backends.onnxruntime import make_session_options

    try:
        sess = ort.InferenceSession(str(path), make_session_options(None, threads), providers=["CPUExecutionProvider"])
        first = sess.run(None, feed)
    except Exception as e:  # noqa: BLE001 - ORT raises several unrelated types for bad graphs
        raise ModelError(f"{path}: ONNX Runtime cannot run it ({' '.join(str(e).split())[:200]})") from None
    binding = sess.io_binding()
    for name, arr in feed.items():
        binding.bind_cpu_input(name, np.ascontiguousarray(arr))
    buffers = [np.empty_like(np.asarray(y)) for y in first]
    for spec, buf in zip(sess.get_outputs(), buffers, strict=True):
        binding.bind_output(spec.name, "cpu", 0, buf.dtype, list(buf.shape), buf.ctypes.data)
    t = time_calls(lambda: sess.run_with_iobinding(binding), runs=runs, warmup=5, min_time_s=min_time_s)
    return float(t.min_ms if stat == "min" else t.p50_ms)


# ---- the table --------------------------------------------------------------------------------------
class LatencyTable:
    """This device's per-layer latencies (see the module docstring). ``stat``: ``"p50"`` or ``"min"``
    of the timed calls (``min`` is steadier on a busy machine; use the same for layers and models)."""

    def __init__(self, path: str | Path | None = None, *, threads: int = 1, runs: int = 30,
                 min_time_s: float = 0.05, stat: str = "p50", key: str | None = None) -> None:
        if stat not in ("p50", "min"):
            raise ModelError(f"LatencyTable: stat must be 'p50' or 'min', not {stat!r}")
        self.path = Path(path) if path else DEFAULT_PATH
        self.threads, self.runs, self.min_time_s, self.stat = threads, runs, min_time_s, stat
        self.key = key or f"{table_key(threads)}/{stat}"
        self.entries: dict[str, float] = {}
        self.call_overhead_ms: float | None = None
        self.fitted = Fit()
        self.measured = 0  # layers timed by this instance (the rest came from the cache)
        self._load()

    def _load(self) -> None:
        if not self.path.is_file():
            return
        try:
            table = json.loads(self.path.read_text()).get("tables", {}).get(self.key, {})
        except (OSError, ValueError, AttributeError) as e:
            raise ModelError(f"{self.path}: not a readable latency table ({e}); delete it to re-measure") from None
        self.entries.update({k: float(v) for k, v in table.get("entries", {}).items()})
        self.call_overhead_ms = table.get("call_overhead_ms")
        self.fitted = Fit(**table["fit"]) if table.get("fit") else Fit()

    def save(self) -> Path:
        """Merge this table into the JSON file (other devices' tables and other processes' entries kept)."""
        from sdk.util.jsonutil import dumps

        data: dict[str, Any] = {"tables": {}}
        if self.path.is_file():
            try:
                data = json.loads(self.path.read_text())
            except (OSError, ValueError):
                pass
        table = data.setdefault("tables", {}).setdefault(self.key, {})
        table["entries"] = {**table.get("entries", {}), **self.entries}
        table["call_overhead_ms"] = self.call_overhead_ms
        table["fit"] = asdict(self.fitted)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.path, dumps(data, indent=1) + "\n")
        return self.path

    def _time(self, path: Path, feed: dict[str, np.ndarray]) -> float:
        return time_onnx(path, feed, self.threads, self.runs, self.min_time_s, self.stat)

    def _overhead(self, tmp: Path) -> float:
        if self.call_overhead_ms is None:
            import onnx
            from onnx import TensorProto, helper

            x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
            y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
            m = helper.make_model(helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "empty", [x], [y]),
                                  opset_imports=[helper.make_opsetid("", 13)])
            m.ir_version = 8
            onnx.save(m, str(tmp / "empty.onnx"))
            self.call_overhead_ms = self._time(tmp / "empty.onnx", {"x": np.zeros(1, np.float32)})
        return self.call_overhead_ms

    def layer_costs(self, model: Model, input_shape: Sequence[int] | None = None,
                    progress: Callable[[Any], Any] | None = None) -> list[tuple[str, float]]:
        """(layer key, ms) for each layer of ``model``, timing the configurations not in the table yet."""
        proto = to_onnx(model, input_shape)
        layers = layers_of(proto)
        todo = {lay.key: lay for lay in layers if lay.key not in self.entries}
        if todo:
            with tempfile.TemporaryDirectory() as tmp:
                base = self._overhead(Path(tmp))
                for i, lay in enumerate(progress(list(todo.values())) if progress else todo.values()):
                    try:
                        ms = self._time(lay.save(Path(tmp) / f"layer{i}.onnx"), lay.feed())
                    except ModelError as e:
                        raise ModelError(f"cannot time layer {lay.nodes[0].op_type} {lay.nodes[0].name!r} "
                                         f"alone: {e}") from None
                    self.entries[lay.key] = max(ms - base, 0.0)
                    self.measured += 1
            self.save()
        return [(lay.key, self.entries[lay.key]) for lay in layers]

    def layer_sum(self, model: Model, input_shape: Sequence[int] | None = None) -> float:
        return float(sum(ms for _, ms in self.layer_costs(model, input_shape)))

    def predict(self, model: Model, input_shape: Sequence[int] | None = None) -> float:
        """Predicted ms per inference: ``scale * sum(layer entries) + overhead_ms``."""
        return self.fitted.scale * self.layer_sum(model, input_shape) + self.fitted.overhead_ms

    def measure(self, model: Model, input_shape: Sequence[int] | None = None) -> float:
        """Measured ms per inference of the whole model (same loop, thread count and statistic)."""
        proto = to_onnx(model, input_shape)
        import onnx

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.onnx"
            onnx.save(proto, str(path))
            return self._time(path, model_feed(proto))

    def fit(self, models: Sequence[Model], input_shape: Sequence[int] | None = None,
            measured: Sequence[float] | None = None) -> Fit:
        """Fit ``scale`` and ``overhead_ms`` on ``models`` (measured now unless ``measured`` is given)."""
        if len(models) < 2:
            raise ModelError("fitting the latency surrogate needs at least 2 calibration models")
        sums = np.array([self.layer_sum(m, input_shape) for m in models])
        ys = np.array(measured if measured is not None else [self.measure(m, input_shape) for m in models])
        a = np.stack([sums, np.ones_like(sums)], axis=1)
        (scale, overhead), *_ = np.linalg.lstsq(a, ys, rcond=None)
        if scale <= 0:  # degenerate calibration (all models alike): keep the sum, fit the offset only
            scale, overhead = 1.0, float(np.mean(ys - sums))
        pred = scale * sums + overhead
        self.fitted = Fit(float(scale), float(overhead), float(np.mean(np.abs(pred - ys) / ys) * 100), len(models))
        self.save()
        return self.fitted

    def mape(self, models: Sequence[Model], input_shape: Sequence[int] | None = None,
             measured: Sequence[float] | None = None) -> dict[str, Any]:
        """Mean absolute percentage error of ``predict`` against measured latency on ``models``
        (use models the fit did not see)."""
        pred = [self.predict(m, input_shape) for m in models]
        meas = list(measured) if measured is not None else [self.measure(m, input_shape) for m in models]
        errs = [abs(p - m) / m * 100 for p, m in zip(pred, meas, strict=True)]
        return {"mape": float(np.mean(errs)), "max_ape": float(np.max(errs)), "predicted_ms": pred,
                "measured_ms": meas}


def model_costs(model: Model, input_shape: Sequence[int] | None, lut: LatencyTable,
                device_class: str | None = None, power_table: str | Path | None = None) -> Costs:
    """Surrogate latency plus MACs, params, peak activation bytes (``ember profile``'s counters) and
    an energy estimate (latency × the device's power figure, ``sdk.optimize.energy``)."""
    from sdk.device import device_class as detect
    from sdk.optimize import energy
    from sdk.optimize.graph_stats import layer_stats, peak_activation_bytes

    proto = to_onnx(model, input_shape)
    stats = layer_stats("model", proto)
    peak, _ = peak_activation_bytes("model", proto)
    ms = lut.predict(proto)
    mj, _ = energy.energy_mj(ms, device_class or detect(), power_table)
    return Costs(ms, sum(s.macs for s in stats), sum(s.params for s in stats), peak, mj)
