"""The arena plan of a model: activation lifetimes, the overlaps the kernels allow, row-fused layer pairs.

Two ways to need less than "every live tensor whole":

* **Overlap**: a layer's output may share bytes with an input it reads for the last time, at an offset
  its kernel's loop order proves safe (``overlap.py``): a pointwise conv writes 1 - C bytes before its
  input, elementwise ops write in place, a stride-2 conv trails its larger input.
* **Row fusion**: when window layer B (conv, depthwise conv, pooling) is the only reader of window
  layer A's output, the pair runs row by row: A computes just the rows B's next output row needs into
  a ring of ``dilation * (kh - 1) + 1`` rows, so A's output never exists whole. A fusion is kept only
  when it makes the arena smaller (it can stop an overlap that was better).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from firmware_export import overlap, planner, residual
from firmware_export.lower import ALIAS_OPS, Layer, shape4
from firmware_export.planner import Buffer, Overlap
from firmware_export.tflite_model import Model
from sdk.errors import ExportError

ARENA_ALIGN = 8
ROW_KERNELS = overlap.WINDOW_KERNELS


@dataclass(frozen=True)
class Fusion:
    producer: int  # index into the layer list; the consumer is producer + 1
    ring_rows: int  # rows of the producer's output kept at once


@dataclass
class Plan:
    layers: list[Layer]
    roots: dict[int, int]  # tensor id -> the tensor whose storage it uses (reshapes alias their input)
    in_root: int
    out_root: int
    buffers: list[Buffer]  # arena buffers, ids are root tensor ids
    overlaps: list[Overlap]  # outputs allowed to overlap an input they were computed from
    fusions: list[Fusion]
    arena_bytes: int
    unplanned_bytes: int  # sum of all activations (what a no-reuse allocator would need)
    prefix: str
    scratch_base: int = 0  # buffer id of layer k's scratch: scratch_base + k
    io_in_arena: bool = False  # the model's input and output are arena buffers too (as in TFLite Micro)
    residuals: list[residual.Residual] = field(default_factory=list)  # conv, conv, ADD run row by row

    def residual_at(self, k: int) -> residual.Residual | None:
        return next((r for r in self.residuals if r.first <= k <= r.first + 2), None)

    def where(self, t: int) -> str:
        """C pointer expression of tensor ``t``."""
        r = self.roots.get(t, t)
        if r == self.in_root and not self.io_in_arena:
            return "input"
        if r == self.out_root and not self.io_in_arena:
            return "output"
        offset = next(b.offset for b in self.buffers if b.id == r)
        return f"{self.prefix}_arena + {offset}"

    @property
    def live_bytes(self) -> list[int]:
        """Arena bytes in use while each layer runs."""
        return [planner.live_bytes(self.buffers, k) for k in range(len(self.layers))]

    def scratch(self, k: int) -> str:
        """C pointer to layer ``k``'s kernel scratch in the arena (NULL when it needs none)."""
        sid = self.scratch_base + k
        return next((f"{self.prefix}_arena + {b.offset}" for b in self.buffers if b.id == sid), "NULL")

    def fusion_at(self, k: int) -> Fusion | None:
        """The fusion whose producer (or consumer) is layer ``k``."""
        return next((f for f in self.fusions if k in (f.producer, f.producer + 1)), None)

    def check(self) -> None:
        """AssertionError if two live buffers share bytes in a way no kernel analysis allowed."""
        planner.check(self.buffers, self.overlaps)


class _Planner:
    def __init__(self, model: Model, layers: list[Layer], prefix: str, io_in_arena: bool = False) -> None:
        self.m, self.layers, self.prefix, self.io = model, layers, prefix, io_in_arena
        parent: dict[int, int] = {}

        def root(t: int) -> int:
            while parent.get(t, t) != t:
                t = parent[t]
            return t

        for op in model.ops:
            if op.code in ALIAS_OPS:
                parent[root(op.outputs[0])] = root(op.inputs[0])
        self.roots = {t: root(t) for t in range(len(model.tensors))}
        self.in_root, self.out_root = root(model.inputs[0]), root(model.outputs[0])
        if self.in_root == self.out_root:
            raise ExportError("the model only reshapes its input; there is nothing to compute")
        self.span: dict[int, tuple[int, int]] = {}
        for k, layer in enumerate(layers):
            for r in [self.root(layer.output)] + [self.root(t) for t in layer.inputs if t >= 0]:
                a, b = self.span.get(r, (k, k))
                self.span[r] = (min(a, k), max(b, k))
        self.deltas: dict[int, Overlap | None] = {}
        self.no_overlap: set[int] = set()  # layers whose overlap is left out (it made the arena larger)
        self.residuals: list[residual.Residual] = []

    def root(self, t: int) -> int:
        return self.roots.get(t, t)

    def scratch_id(self, k: int) -> int:
        return scratch_id(self.m, k)

    def candidates(self) -> list[Fusion]:
        out = []
        for k, (a, b) in enumerate(zip(self.layers, self.layers[1:])):
            r = self.root(a.output)
            src = [self.root(t) for t in b.inputs if t >= 0]
            if (a.kernel not in ROW_KERNELS or b.kernel not in ROW_KERNELS or src != [r]
                    or r in (self.in_root, self.out_root) or self.span[r] != (k, k + 1)):
                continue
            a_out, b_out = shape4(self.m.tensors[a.output].shape), shape4(self.m.tensors[b.output].shape)
            rows = int(b.fields.get("dil_h", 1)) * (int(b.fields["kh"]) - 1) + 1  # type: ignore[call-overload]
            if a_out[0] == 1 and b_out[0] == 1 and rows < a_out[1]:
                out.append(Fusion(k, rows))
        return out

    def overlap_of(self, k: int, buffers: dict[int, Buffer]) -> Overlap | None:
        """The overlap of layer ``k``'s output with a last-read input that saves the most bytes."""
        if k not in self.deltas:
            self.deltas[k] = _best_overlap(self.m, self.layers[k], k, self.root, buffers)
        return self.deltas[k]

    def plan(self, fusions: list[Fusion]) -> Plan:
        span = dict(self.span)
        fused = {f.producer: f for f in fusions}
        sizes = {r: self.m.tensors[r].nbytes for r in span}
        for k, f in fused.items():  # the pair runs interleaved: everything it touches lives through both
            a, b = self.layers[k], self.layers[k + 1]
            for t in a.inputs:
                if t >= 0:
                    r = self.root(t)
                    span[r] = (span[r][0], max(span[r][1], k + 1))
            rb = self.root(b.output)
            span[rb] = (k, span[rb][1])
            _, _, w, c = shape4(self.m.tensors[a.output].shape)
            sizes[self.root(a.output)] = f.ring_rows * w * c
        for res in self.residuals:  # A's output: a window of rows, B's: one row; all live through the three
            k, (a, b, _) = res.first, self.layers[res.first:res.first + 3]
            ra, rb = self.root(a.output), self.root(b.output)
            span[ra], span[rb] = (k, k + 2), (k, k + 2)
            sizes[ra] = res.rows * residual.row_bytes(self.m, a.output)
            sizes[rb] = residual.row_bytes(self.m, b.output)
        if self.io:  # the caller writes the input before layer 0 and reads the output after the last
            span[self.in_root] = (0, span[self.in_root][1])
            span[self.out_root] = (span[self.out_root][0], len(self.layers) - 1)
        buffers = {r: Buffer(r, sizes[r], a, b) for r, (a, b) in span.items()
                   if self.io or r not in (self.in_root, self.out_root)}
        for k, layer in enumerate(self.layers):  # kernel scratch lives while its layer (or fused pair) runs
            if layer.scratch_bytes:
                pair = next((q for q in fused if k in (q, q + 1)), None)
                a, b = (k, k) if pair is None else (pair, pair + 1)
                a, b = next(((r.first, r.first + 2) for r in self.residuals if r.first <= k <= r.first + 2), (a, b))
                buffers[self.scratch_id(k)] = Buffer(self.scratch_id(k), layer.scratch_bytes, a, b)
        busy = set(fused) | {k + 1 for k in fused} | {r.first + i for r in self.residuals for i in range(3)}
        overlaps = [o for k in range(len(self.layers))
                    if k not in busy and k not in self.no_overlap and (o := self.overlap_of(k, buffers))]
        for res in self.residuals:  # the ADD writes row y over its input X's row y
            a, c = self.layers[res.first], self.layers[res.first + 2]
            overlaps.append(Overlap(self.root(a.inputs[0]), self.root(c.output), 0))
        arena = planner.plan(list(buffers.values()), ARENA_ALIGN, overlaps)
        unplanned = sum(self.m.tensors[r].nbytes if r < len(self.m.tensors) else b.size
                        for r, b in buffers.items())
        return Plan(self.layers, self.roots, self.in_root, self.out_root, list(buffers.values()), overlaps,
                    list(fusions), arena, unplanned, self.prefix, scratch_id(self.m, 0), self.io,
                    list(self.residuals))


def _best_overlap(model: Model, layer: Layer, k: int, root: Callable[[int], int],
                  buffers: dict[int, Buffer]) -> Overlap | None:
    out = buffers.get(root(layer.output))
    if out is None:
        return None
    best: Overlap | None = None
    lead = overlap.min_lead_delta(model, layer)
    if lead is not None:  # written last chunk first: the output may start above its input
        r = root(layer.inputs[0])
        if r in buffers and buffers[r].last == k and planner.align_up(lead, ARENA_ALIGN) < buffers[r].size:
            return Overlap(r, out.id, lead, after=True)
        return None
    for r in {root(t) for t in layer.inputs if t >= 0}:
        if r not in buffers or buffers[r].last != k:
            continue
        deltas = [overlap.max_safe_delta(model, layer, a) for a, t in enumerate(layer.inputs)
                  if t >= 0 and root(t) == r]
        if None in deltas:
            continue
        delta = min(d for d in deltas if d is not None)
        # an overlap that shares no byte once aligned would only tie the two buffers' placement together
        if planner.align_down(min(delta, 0), ARENA_ALIGN) > -out.size and (best is None or delta > best.max_delta):
            best = Overlap(r, out.id, delta)
    return best


def _prune_overlaps(p: _Planner, best: Plan) -> Plan:
    """Overlaps are placed as rigid chains, so more is not always smaller: from the plan with every
    overlap and from the one with none, greedily drop (resp. add) one layer's overlap at a time while
    the arena shrinks; keep the smaller result."""
    layers = [k for k in range(len(p.layers)) if any(o.output == p.root(p.layers[k].output) for o in best.overlaps)]
    results = []
    for start in (set(), set(layers)):
        p.no_overlap = set(start)
        cur = p.plan(best.fusions)
        for k in layers:
            p.no_overlap ^= {k}
            trial = p.plan(best.fusions)
            if trial.arena_bytes < cur.arena_bytes:
                cur = trial
            else:
                p.no_overlap ^= {k}
        results.append((cur.arena_bytes, set(p.no_overlap)))
    size, p.no_overlap = min(results, key=lambda r: r[0])
    return p.plan(best.fusions) if size < best.arena_bytes else best


def _chunk_pointwise(model: Model, layers: list[Layer], prefix: str, best: Plan, io: bool) -> Plan:
    """CMSIS-NN's fast 1x1 convolution rereads its whole input for every pair of output channels, so
    its output can never overlap its input; run on k chunks of pixels (k - 1 kernel-sum loops more, kept
    under ~1% of the layer) its output may overlap the later chunks. First layer by layer (forward
    chunks), then every such layer at once in two chunks with alternating directions: a forward layer's
    output trails its input, a reversed one's leads it, so a chain of overlapping buffers through a
    depthwise/pointwise stack does not drift apart. Kept only where the arena shrinks."""
    from firmware_export import cmsis

    pointwise = [layer for layer in layers if cmsis.pointwise_fast(model, layer)]

    def pixels(layer: Layer) -> int:
        n, h, w, _ = shape4(model.tensors[layer.inputs[0]].shape)
        return n * h * w

    def state() -> list[tuple[object, object]]:
        return [(ly.fields.get("chunk_pixels"), ly.fields.get("chunk_reverse")) for ly in pointwise]

    def restore(saved: list[tuple[object, object]]) -> None:
        for ly, (chunk, rev) in zip(pointwise, saved):
            ly.fields.pop("chunk_pixels", None), ly.fields.pop("chunk_reverse", None)
            ly.fields.update({k: v for k, v in (("chunk_pixels", chunk), ("chunk_reverse", rev)) if v})

    def replan() -> Plan:
        p = _Planner(model, layers, prefix, io)
        p.residuals = list(best.residuals)
        return _prune_overlaps(p, p.plan(best.fusions))

    for layer in pointwise:
        for k in (2, 4, 8, 16, 32):  # each call recomputes the kernel sums: Cin * Cout, ~1/P of the layer
            if k - 1 > max(1, pixels(layer) // 100):
                break
            saved = state()
            layer.fields["chunk_pixels"] = -(-pixels(layer) // k)
            trial = replan()
            if trial.arena_bytes < best.arena_bytes:
                best = trial
            else:
                restore(saved)
    for first_reversed in (True, False):
        saved = state()
        for i, layer in enumerate(pointwise):
            layer.fields["chunk_pixels"] = -(-pixels(layer) // 2)
            layer.fields.pop("chunk_reverse", None)
            if (i % 2 == 0) == first_reversed:
                layer.fields["chunk_reverse"] = 1
        trial = replan()
        if trial.arena_bytes >= best.arena_bytes:
            restore(saved)
            continue
        best = trial
        for layer in pointwise:  # fewer chunked layers (fewer instructions) where the arena allows
            kept = state()
            layer.fields.pop("chunk_pixels"), layer.fields.pop("chunk_reverse", None)
            trial = replan()
            if trial.arena_bytes <= best.arena_bytes:
                best = trial
            else:
                restore(kept)
    return best


def _residual_rows(p: _Planner, best: Plan) -> Plan:
    """Run conv, conv, ADD residual blocks row by row (``residual.py``) where that shrinks the arena."""
    arena_roots = {r for r in p.span if p.io or r not in (p.in_root, p.out_root)}
    taken = {k for f in best.fusions for k in (f.producer, f.producer + 1)}
    for res in residual.find(p.m, p.layers, p.root, p.span, arena_roots):
        if taken & {res.first, res.first + 1, res.first + 2}:
            continue
        p.residuals.append(res)
        p.deltas.clear()
        trial = _prune_overlaps(p, p.plan(best.fusions))
        if trial.arena_bytes < best.arena_bytes:
            best = trial
            taken |= {res.first, res.first + 1, res.first + 2}
        else:
            p.residuals.pop()
    p.deltas.clear()
    return best


def scratch_id(model: Model, k: int) -> int:
    """Buffer id of layer ``k``'s scratch (past every tensor id)."""
    return len(model.tensors) + k


def candidates(model: Model, layers: list[Layer]) -> list[Fusion]:
    """Every layer pair that could run row by row (at most one per layer is used at a time)."""
    return _Planner(model, layers, "m").candidates()


def make_plan(model: Model, layers: list[Layer], prefix: str, fusions: list[Fusion] | None = None,
              io_in_arena: bool = False) -> Plan:
    """Lifetimes, overlaps and row fusions, offsets placed. ``fusions``: None picks the fusions that
    shrink the arena (greedily, in layer order); a list (``[]``: none) uses exactly those.
    ``io_in_arena``: the model's input and output get arena space too (reused once dead)."""
    p = _Planner(model, layers, prefix, io_in_arena)
    allowed = p.candidates()
    if fusions is None:
        best = p.plan([])
        for cand in allowed:
            if any(cand.producer in (f.producer - 1, f.producer, f.producer + 1) for f in best.fusions):
                continue
            trial = p.plan(best.fusions + [cand])
            if trial.arena_bytes < best.arena_bytes:
                best = trial
        best = _prune_overlaps(p, best)
    else:
        producers = [f.producer for f in fusions]
        if any(f not in allowed for f in fusions) or any(k + 1 in producers for k in producers):
            raise ExportError(f"fusions {fusions} are not possible here; candidates: {allowed}")
        best = p.plan(list(fusions))
    if fusions is None:
        best = _residual_rows(p, best)
        best = _chunk_pointwise(model, layers, prefix, best, io_in_arena)
    try:
        best.check()
    except AssertionError as e:  # pragma: no cover - would be a planner bug
        raise ExportError(f"internal error: unsafe arena plan ({e}); please report this model") from None
    return best
