"""Residual blocks run row by row: convolution A, convolution B, ADD(B's output, A's input X).

In a ResNet block the block input X lives through both convolutions (the ADD reads it), so X, A's
output and B's output (or B's input and output with an overlap) are alive at once: the peak of the
whole model. Run row by row, A's output is a window of ``rows`` rows (slid back when full), B's output
one row, and the ADD writes its output row into X's row in place: X's row ``y`` is dead once B's row
``y`` is done because A's later rows only read X rows below ``y`` (checked for every row at export).

Both convolutions are CMSIS-NN calls on one output row each (``arm_convolve_s8`` with the input rows
that row reads; the top padding passed explicitly, the bottom one by the slice ending at the image's
last row), bit-exact with the whole-layer call; the ADD is Ember's, on one row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from firmware_export.lower import Layer, shape4
from firmware_export.tflite_model import Model

CONV = "arm_convolve_wrapper_s8"


@dataclass(frozen=True)
class Residual:
    first: int  # index of A in the layer list; B and the ADD follow it
    rows: int  # rows of A's output kept at once


def _conv_ok(m: Model, layer: Layer) -> bool:
    f = layer.fields
    return (layer.kernel == CONV and int(f["kh"]) >= 2 and (f["dil_h"], f["dil_w"]) == (1, 1)  # type: ignore[call-overload]
            and "chunk_pixels" not in f and shape4(m.tensors[layer.output].shape)[0] == 1)


def _need(b: Layer, y: int, rows_a: int) -> tuple[int, int]:
    """A's rows B's output row ``y`` reads: [first, end)."""
    t = y * int(b.fields["stride_h"]) - int(b.fields["pad_h"])  # type: ignore[call-overload]
    return max(t, 0), min(t + int(b.fields["kh"]), rows_a)  # type: ignore[call-overload]


def find(m: Model, layers: list[Layer], root: Callable[[int], int], span: dict[int, tuple[int, int]],
         arena_roots: set[int]) -> list[Residual]:
    """Every A, B, ADD triple that can run row by row (see module doc)."""
    out = []
    for k in range(len(layers) - 2):
        a, b, c = layers[k:k + 3]
        if not (_conv_ok(m, a) and _conv_ok(m, b) and c.kernel == "ember_add" and a.inputs[0] >= 0):
            continue
        x, ra, rb = root(a.inputs[0]), root(a.output), root(b.output)
        ins = sorted(root(t) for t in c.inputs if t >= 0)
        if ([root(t) for t in b.inputs if t >= 0] != [ra] or ins != sorted([x, rb]) or x == rb
                or span.get(ra) != (k, k + 1) or span.get(rb) != (k + 1, k + 2) or span.get(x, (0, -1))[1] != k + 2
                or not {x, root(c.output)} <= arena_roots or c.fields["size2"] != c.fields["size"]
                or shape4(m.tensors[c.output].shape) != shape4(m.tensors[x].shape)
                or shape4(m.tensors[b.output].shape) != shape4(m.tensors[x].shape)):
            continue
        rows_x, rows_a = shape4(m.tensors[x].shape)[1], shape4(m.tensors[a.output].shape)[1]
        sa, pa = int(a.fields["stride_h"]), int(a.fields["pad_h"])  # type: ignore[call-overload]
        # in place: once B's row y is done, A's rows still to compute read only X rows below y
        if all(end >= rows_a or end * sa - pa > y for y in range(rows_x) for _, end in [_need(b, y, rows_a)]):
            out.append(Residual(k, min(rows_a, 4 * int(b.fields["kh"]))))  # type: ignore[call-overload]
    return out


def row_bytes(m: Model, t: int) -> int:
    _, _, w, c = shape4(m.tensors[t].shape)
    return w * c


def _conv_row(m: Model, layer: Layer, prefix: str, y: str, src: str, dst: str, scratch: str) -> list[str]:
    """One CMSIS-NN call computing output row ``y`` of ``layer``; ``src(r)`` points at input row r."""
    f, p = layer.fields, f"{prefix}_c{layer.index}"
    _, ih, iw, ic = shape4(m.tensors[layer.inputs[0]].shape)
    _, _, ow, oc = shape4(m.tensors[layer.output].shape)
    return [(f"{{ const int32_t t = ({y}) * {f['stride_h']} - {f['pad_h']}, r0 = t > 0 ? t : 0, "
            f"r1 = t + {f['kh']} < {ih} ? t + {f['kh']} : {ih};"),
            f"  const cmsis_nn_dims in_d = {{1, r1 - r0, {iw}, {ic}}}, out_d = {{1, 1, {ow}, {oc}}};",
            f"  const cmsis_nn_context ctx = {{{scratch}, {layer.scratch_bytes}}};",
            f"  cmsis_nn_conv_params cp = {p};",
            "  cp.padding.h = r0 - t;",
            (f"  arm_convolve_s8(&ctx, &cp, &{p}_q, &in_d, {src.format(r='r0')}, &{p}_f, {f['filter']}, &{p}_b, "
            f"{f.get('bias', 'NULL')}, NULL, &out_d, {dst}); }}")]


def code(m: Model, plan: Any, res: Residual, prefix: str) -> list[str]:
    """The C block running layers ``res.first`` .. ``res.first + 2`` row by row."""
    a, b, c = plan.layers[res.first:res.first + 3]
    rows_a, rows_b = shape4(m.tensors[a.output].shape)[1], shape4(m.tensors[b.output].shape)[1]
    x, win, row = plan.where(a.inputs[0]), plan.where(a.output), plan.where(b.output)
    ra, rx = row_bytes(m, a.output), row_bytes(m, a.inputs[0])
    sb, pb, kb = b.fields["stride_h"], b.fields["pad_h"], b.fields["kh"]
    add_args = [row if plan.roots.get(t, t) == plan.roots.get(b.output, b.output) else f"{x} + y * {rx}"
                for t in c.inputs]
    lines = [(f"{{ /* layers {a.index}, {b.index} and {c.index} fused row by row: layer {a.index}'s output is a "
             f"window of {res.rows} rows, layer {b.index}'s one row, the ADD writes in place over its input */"),
             "  int32_t y, done = 0, base = 0;",
             f"  for (y = 0; y < {rows_b}; ++y) {{",
             f"    const int32_t t = y * {sb} - {pb}, lo = t > 0 ? t : 0, need = t + {kb} < {rows_a} ? t + {kb} : {rows_a};",
             "    for (; done < need; ++done) {",
             (f"      if (done - base == {res.rows}) {{ ember_copy((done - lo) * {ra}, {win} + (lo - base) * {ra}, {win}); "
             "base = lo; }")]
    lines += ["      " + s for s in _conv_row(m, a, prefix, "done", f"{x} + {{r}} * {rx}",
                                             f"{win} + (done - base) * {ra}", plan.scratch(res.first))]
    lines += ["    }"]
    lines += ["    " + s for s in _conv_row(m, b, prefix, "y", f"{win} + ({{r}} - base) * {ra}", row,
                                           plan.scratch(res.first + 1))]
    lines += [f"    ember_add(&{prefix}_p{c.index}_row, {', '.join(add_args)}, {plan.where(c.output)} + y * {rx});",
              "  }", "}"]
    return lines


def row_params(m: Model, c: Layer) -> dict[str, object]:
    """The ADD's parameters for one row."""
    n = row_bytes(m, c.output)
    return {**c.fields, "size": n, "size2": n}
