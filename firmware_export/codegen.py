"""Write the standalone C model (``NAME.h``/``NAME.c``) from lowered layers and their arena plan."""

from __future__ import annotations

import numpy as np

from firmware_export import cmsis, residual
from firmware_export.arena import Plan
from firmware_export.lower import ConstArray, Layer, shape4
from firmware_export.tflite_model import Model


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


def io_types(model: Model) -> tuple[str, str]:
    """C element types of the model's input and output (int8_t, or int16_t for 16x8 models)."""
    return tuple(f"{model.tensors[t].dtype}_t" for t in (model.inputs[0], model.outputs[0]))  # type: ignore[return-value]


def header(model: Model, plan_: Plan, prefix: str) -> str:
    x, y = model.tensors[model.inputs[0]], model.tensors[model.outputs[0]]
    in_t, out_t = io_types(model)
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
                  f"#define {up}_{tag}_ZERO_POINT ({z})",
                  f"#define {up}_{tag}_T {in_t if tag == 'INPUT' else out_t}"]
    lines += [f"#define {up}_ARENA_BYTES {plan_.arena_bytes}",
              f"#define {up}_WEIGHT_BYTES {weights}",
              f"#define {up}_LAYERS {len(plan_.layers)}", "",
              f"/* Run the model on one {in_t[:-2]} input; writes the {out_t[:-2]} output. Returns 0 on success,",
              " * -1 for a NULL argument. Not reentrant: one static arena. */",
              f"int {prefix}_invoke(const {in_t} *input, {out_t} *output);", "",
              *_io_header(prefix, up, plan_.io_in_arena, in_t, out_t),
              "#ifdef __cplusplus", "}", "#endif", f"#endif /* {up}_H */", ""]
    return "\n".join(lines)


def _io_header(prefix: str, up: str, io_in_arena: bool, in_t: str, out_t: str) -> list[str]:
    if not io_in_arena:
        return []
    return [f"/* Input and output live in the arena (as in TensorFlow Lite Micro): write {up}_INPUT_SIZE bytes",
            f" * to {prefix}_input(), call {prefix}_run(), read {prefix}_output(). The arena is reused: refill",
            f" * the input before every run. ({prefix}_invoke copies in and out around {prefix}_run.) */",
            f"#define {up}_IO_IN_ARENA 1",
            f"{in_t} *{prefix}_input(void);", f"const {out_t} *{prefix}_output(void);", f"int {prefix}_run(void);", ""]


def _init(fields: dict[str, object]) -> str:
    return ", ".join(f".{k} = {v}" for k, v in fields.items())


def source(model: Model, plan_: Plan, prefix: str, section: str | None) -> str:
    up = prefix.upper()
    attr = f'__attribute__((section("{section}")))' if section else ""
    uses_cmsis = any(layer.params_type == "cmsis" for layer in plan_.layers)
    out = [f'#include "{prefix}.h"', '#include "ember_nn.h"', "#include <stddef.h>",
           *(['#include "arm_nnfunctions.h" /* CMSIS-NN: build with -I$(CMSIS_NN_DIR)/Include */'] if uses_cmsis
             else []), "",
           f"#ifndef {up}_WEIGHTS_ATTR",
           f"#if defined(__GNUC__)\n#define {up}_WEIGHTS_ATTR {attr}\n#else\n#define {up}_WEIGHTS_ATTR\n#endif",
           "#endif", "#if defined(__GNUC__)", "#define EMBER_ALIGN16 __attribute__((aligned(16)))", "#else",
           "#define EMBER_ALIGN16", "#endif",
           "#ifndef EMBER_TRACE /* define to observe each layer's output: (op index, data, size) */",
           "#define EMBER_TRACE(op, data, size) ((void)0)", "#endif", ""]
    if plan_.arena_bytes:  # before the layers: their parameters may point into it
        out.append(f"static int8_t {prefix}_arena[{plan_.arena_bytes}] EMBER_ALIGN16;\n")
    for k, layer in enumerate(plan_.layers):
        out.append(f"/* layer {layer.index}: {layer.op} -> {model.tensors[layer.output].name} */")
        out += [c_array(c, f"{up}_WEIGHTS_ATTR") for c in layer.consts]
        res = plan_.residual_at(k)
        if layer.params_type == "cmsis":
            out += cmsis.declare(model, layer, prefix, whole=res is None) + [""]
        elif res is None:
            out.append(f"static const {layer.params_type} {_pname(plan_, k, prefix)} = {{{_init(_fields(plan_, k))}}};\n")
        if res is not None and k == res.first + 2:
            out.append(f"static const {layer.params_type} {prefix}_p{layer.index}_row = "
                       f"{{{_init(residual.row_params(model, layer))}}};\n")
    if plan_.io_in_arena:
        out += _io_functions(model, plan_, prefix)
        out.append(f"int {prefix}_run(void) {{")
    else:
        out.append(f"int {prefix}_invoke(const {io_types(model)[0]} *input, {io_types(model)[1]} *output) {{")
        out.append("  if (input == NULL || output == NULL) return -1;")
    for k, layer in enumerate(plan_.layers):
        fusion, res = plan_.fusion_at(k), plan_.residual_at(k)
        if res is not None:
            if k == res.first:  # one block, then the three layers' marks (the first one counts the block)
                out += ["  " + line for line in residual.code(model, plan_, res, prefix)]
                out += [f"  EMBER_TRACE({ly.index}, {plan_.where(ly.output)}, {_traced_size(model, plan_, res.first + i)});"
                        for i, ly in enumerate(plan_.layers[k:k + 3])]
            continue
        if layer.params_type == "cmsis":
            out.append("  " + cmsis.call(model, layer, prefix, _args(plan_, layer), plan_.scratch(k)))
        elif fusion is None:
            out.append(f"  {layer.kernel}(&{_pname(plan_, k, prefix)}, {', '.join(_args(plan_, layer, model))});")
        elif fusion.producer == k:
            out += _fused_loop(model, plan_, layer, plan_.layers[k + 1], prefix)
        out.append(f"  EMBER_TRACE({layer.index}, {plan_.where(layer.output)}, {_traced_size(model, plan_, k)});")
    out += ["  return 0;", "}", ""]
    return "\n".join(out)


def _io_functions(model: Model, plan_: Plan, prefix: str) -> list[str]:
    """NAME_input/NAME_output (arena pointers) and NAME_invoke as copy in, NAME_run, copy out."""
    x, y = model.tensors[model.inputs[0]], model.tensors[model.outputs[0]]
    (in_t, out_t), src, dst = io_types(model), plan_.where(model.inputs[0]), plan_.where(model.outputs[0])
    return [f"int {prefix}_run(void);", "",
            f"{in_t} *{prefix}_input(void) {{ return ({in_t} *)({src}); }}",
            f"const {out_t} *{prefix}_output(void) {{ return (const {out_t} *)({dst}); }}", "",
            f"int {prefix}_invoke(const {in_t} *input, {out_t} *output) {{",
            "  int32_t i;", f"  {in_t} *in = {prefix}_input();", f"  const {out_t} *out = {prefix}_output();",
            "  if (input == NULL || output == NULL) return -1;",
            f"  for (i = 0; i < {x.size}; ++i) in[i] = input[i];",
            f"  {prefix}_run();",
            f"  for (i = 0; i < {y.size}; ++i) output[i] = out[i];",
            "  return 0;", "}", ""]


def _pname(plan_: Plan, k: int, prefix: str) -> str:
    """Name of layer ``k``'s parameter struct; ops lowered to several layers (SPLIT, CONCATENATION) number them."""
    index = plan_.layers[k].index
    part = sum(ly.index == index for ly in plan_.layers[:k])
    return f"{prefix}_p{index}" + (f"_{part}" if part or sum(ly.index == index for ly in plan_.layers) > 1 else "")


def _args(plan_: Plan, layer: Layer, model: Model | None = None) -> list[str]:
    args = [layer.consts[~t].name if t < 0 else plan_.where(t) for t in layer.inputs] + [plan_.where(layer.output)]
    if model is not None and layer.kernel.endswith("_s16"):  # int16 activations: typed pointers
        args = [f"(const int16_t *)({a})" for a in args[:-1]] + [f"(int16_t *)({args[-1]})"]
    return args


def _fields(plan_: Plan, k: int) -> dict[str, object]:
    fields = dict(plan_.layers[k].fields)
    if plan_.layers[k].scratch_bytes:
        fields["patch"] = plan_.scratch(k)
    fusion = plan_.fusion_at(k)
    if fusion is not None:
        fields["out_rows" if fusion.producer == k else "in_rows"] = fusion.ring_rows
    return fields


def _traced_size(model: Model, plan_: Plan, k: int) -> int:
    """Bytes EMBER_TRACE sees: a fused producer's ring holds only its last rows."""
    fusion, t, res = plan_.fusion_at(k), model.tensors[plan_.layers[k].output], plan_.residual_at(k)
    if res is not None and k < res.first + 2:  # a window of rows, then one row
        return residual.row_bytes(model, plan_.layers[k].output) * (res.rows if k == res.first else 1)
    if fusion is not None and fusion.producer == k:
        _, _, w, c = shape4(t.shape)
        return fusion.ring_rows * w * c
    return t.size


def _fused_loop(model: Model, plan_: Plan, a: Layer, b: Layer, prefix: str) -> list[str]:
    """B's output rows one at a time, each preceded by the rows of A it needs (into A's ring)."""
    a_rows = shape4(model.tensors[a.output].shape)[1]
    b_rows = shape4(model.tensors[b.output].shape)[1]
    f = b.fields
    reach = f"y * {f['stride_h']} - {f['pad_h']} + {int(f.get('dil_h', 1)) * (int(f['kh']) - 1) + 1}"  # type: ignore[call-overload]
    a_args, b_args = _args(plan_, a), _args(plan_, b)
    return [f"  {{ /* layers {a.index} and {b.index} fused: layer {a.index}'s output is a ring of rows */",
            "    int32_t y, done = 0;",
            f"    for (y = 0; y < {b_rows}; ++y) {{",
            f"      const int32_t need = {reach} < {a_rows} ? {reach} : {a_rows};",
            "      if (need > done) {",
            f"        {a.kernel}_rows(&{prefix}_p{a.index}, {', '.join(a_args)}, done, need);",
            "        done = need;",
            "      }",
            f"      {b.kernel}_rows(&{prefix}_p{b.index}, {', '.join(b_args)}, y, y + 1);",
            "    }", "  }"]
