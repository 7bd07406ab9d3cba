"""Plan the arena and write the standalone C model (``NAME.h``/``NAME.c``) from lowered layers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from firmware_export import overlap, planner
from firmware_export.lower import ALIAS_OPS, ConstArray, Layer
from firmware_export.planner import Buffer, Overlap, plan
from firmware_export.tflite_model import Model
from sdk.errors import ExportError

ARENA_ALIGN = 8


@dataclass
class Plan:
    layers: list[Layer]
    roots: dict[int, int]  # tensor id -> the tensor whose storage it uses (reshapes alias their input)
    in_root: int
    out_root: int
    buffers: list[Buffer]  # arena buffers, ids are root tensor ids
    overlaps: list[Overlap]  # outputs allowed to overlap an input they were computed from
    arena_bytes: int
    unplanned_bytes: int  # sum of all arena buffers (what a no-reuse allocator would need)
    prefix: str

    def where(self, t: int) -> str:
        """C pointer expression of tensor ``t``."""
        r = self.roots.get(t, t)
        if r == self.in_root:
            return "input"
        if r == self.out_root:
            return "output"
        offset = next(b.offset for b in self.buffers if b.id == r)
        return f"{self.prefix}_arena + {offset}"

    @property
    def live_bytes(self) -> list[int]:
        """Arena bytes in use while each layer runs."""
        return [planner.live_bytes(self.buffers, k) for k in range(len(self.layers))]

    def check(self) -> None:
        """AssertionError if two live buffers share bytes in a way no kernel analysis allowed."""
        planner.check(self.buffers, self.overlaps)


def make_plan(model: Model, layers: list[Layer], prefix: str) -> Plan:
    """Lifetimes of the activations, the overlaps the kernels allow, and the arena placement."""
    parent: dict[int, int] = {}

    def root(t: int) -> int:
        while parent.get(t, t) != t:
            t = parent[t]
        return t

    for op in model.ops:
        if op.code in ALIAS_OPS:
            parent[root(op.outputs[0])] = root(op.inputs[0])
    in_root, out_root = root(model.inputs[0]), root(model.outputs[0])
    if in_root == out_root:
        raise ExportError("the model only reshapes its input; there is nothing to compute")
    span: dict[int, list[int]] = {}
    for k, layer in enumerate(layers):
        span.setdefault(root(layer.output), [k, k])
        for t in layer.inputs:
            if t >= 0:
                span.setdefault(root(t), [k, k])[1] = k
    buffers = {r: Buffer(r, model.tensors[r].nbytes, a, b) for r, (a, b) in span.items()
               if r not in (in_root, out_root)}
    overlaps = [o for k, layer in enumerate(layers) if (o := _overlap(model, layer, k, root, buffers))]
    arena = plan(list(buffers.values()), ARENA_ALIGN, overlaps)
    roots = {t: root(t) for t in range(len(model.tensors))}
    result = Plan(layers, roots, in_root, out_root, list(buffers.values()), overlaps, arena,
                  sum(b.size for b in buffers.values()), prefix)
    try:
        result.check()
    except AssertionError as e:  # pragma: no cover - would be a planner bug
        raise ExportError(f"internal error: unsafe arena plan ({e}); please report this model") from None
    return result


def _overlap(model: Model, layer: Layer, k: int, root: Callable[[int], int],
             buffers: dict[int, Buffer]) -> Overlap | None:
    """The overlap of ``layer``'s output with one of its last-read inputs that saves the most bytes."""
    out = buffers.get(root(layer.output))
    if out is None:
        return None
    best: Overlap | None = None
    for r in {root(t) for t in layer.inputs if t >= 0}:
        if r not in buffers or buffers[r].last != k:
            continue
        deltas = [overlap.max_safe_delta(model, layer, a) for a, t in enumerate(layer.inputs)
                  if t >= 0 and root(t) == r]
        if None in deltas:
            continue
        delta = min(d for d in deltas if d is not None)
        if delta > -out.size and (best is None or delta > best.max_delta):
            best = Overlap(r, out.id, delta)
    return best


def c_array(arr: ConstArray, attr: str) -> str:
    if arr.ctype == "double":  # C99 hex floats keep every bit
        vals = [float(v).hex() for v in arr.values.tolist()]
    else:
        vals = arr.values.astype(np.int64).tolist()
    rows = [", ".join(str(v) for v in vals[i:i + 24]) for i in range(0, len(vals), 24)]
    body = ",\n  ".join(rows)
    return f"static const {arr.ctype} {arr.name}[{len(vals)}] {attr} = {{\n  {body}\n}};\n"


def c_float(x: float) -> str:
    return f"{float(np.float32(x)):.9g}f"


def header(model: Model, plan_: Plan, prefix: str) -> str:
    x, y = model.tensors[model.inputs[0]], model.tensors[model.outputs[0]]
    up = prefix.upper()
    weights = sum(layer.weight_bytes for layer in plan_.layers)
    lines = [
        f"/* {prefix}: int8 model exported by Ember (firmware_export). Standalone C99: no interpreter,",
        " * no malloc. Tensors are NHWC int8: real = scale * (q - zero_point). */",
        f"#ifndef {up}_H", f"#define {up}_H", "", "#include <stdint.h>", "",
        "#ifdef __cplusplus", 'extern "C" {', "#endif", "",
    ]
    for tag, t in (("INPUT", x), ("OUTPUT", y)):
        s, z = t.qparams()
        lines += [f"#define {up}_{tag}_SIZE {t.size}",
                  f"#define {up}_{tag}_DIMS {len(t.shape)}",
                  f"#define {up}_{tag}_SHAPE {{{', '.join(map(str, t.shape))}}}",
                  f"#define {up}_{tag}_SCALE {c_float(s)}",
                  f"#define {up}_{tag}_ZERO_POINT ({z})"]
    lines += [f"#define {up}_ARENA_BYTES {plan_.arena_bytes}",
              f"#define {up}_WEIGHT_BYTES {weights}",
              f"#define {up}_LAYERS {len(plan_.layers)}", "",
              "/* Run the model on one int8 input; writes the int8 output. Returns 0 on success,",
              " * -1 for a NULL argument. Not reentrant: one static arena. */",
              f"int {prefix}_invoke(const int8_t *input, int8_t *output);", "",
              "#ifdef __cplusplus", "}", "#endif", f"#endif /* {up}_H */", ""]
    return "\n".join(lines)


def _init(fields: dict[str, object]) -> str:
    return ", ".join(f".{k} = {v}" for k, v in fields.items())


def source(model: Model, plan_: Plan, prefix: str, section: str | None) -> str:
    up = prefix.upper()
    attr = f'__attribute__((section("{section}")))' if section else ""
    out = [f'#include "{prefix}.h"', '#include "ember_nn.h"', "#include <stddef.h>", "",
           f"#ifndef {up}_WEIGHTS_ATTR",
           f"#if defined(__GNUC__)\n#define {up}_WEIGHTS_ATTR {attr}\n#else\n#define {up}_WEIGHTS_ATTR\n#endif",
           "#endif", "#if defined(__GNUC__)", "#define EMBER_ALIGN16 __attribute__((aligned(16)))", "#else",
           "#define EMBER_ALIGN16", "#endif",
           "#ifndef EMBER_TRACE /* define to observe each layer's output: (op index, data, size) */",
           "#define EMBER_TRACE(op, data, size) ((void)0)", "#endif", ""]
    for layer in plan_.layers:
        out.append(f"/* layer {layer.index}: {layer.op} -> {model.tensors[layer.output].name} */")
        out += [c_array(c, f"{up}_WEIGHTS_ATTR") for c in layer.consts]
        out.append(f"static const {layer.params_type} {prefix}_p{layer.index} = {{{_init(layer.fields)}}};\n")
    if plan_.arena_bytes:
        out.append(f"static int8_t {prefix}_arena[{plan_.arena_bytes}] EMBER_ALIGN16;\n")
    out.append(f"int {prefix}_invoke(const int8_t *input, int8_t *output) {{")
    out.append("  if (input == NULL || output == NULL) return -1;")
    for layer in plan_.layers:
        args = [layer.consts[~t].name if t < 0 else plan_.where(t) for t in layer.inputs]
        dst = plan_.where(layer.output)
        out.append(f"  {layer.kernel}(&{prefix}_p{layer.index}, {', '.join(args)}, {dst});")
        out.append(f"  EMBER_TRACE({layer.index}, {dst}, {model.tensors[layer.output].size});")
    out += ["  return 0;", "}", ""]
    return "\n".join(out)
