"""Overlapping output/input buffers: the kernel analysis, the planner's use of it, and what a wrong
offset does to the generated C."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from firmware_export import arena, lower
from firmware_export.overlap import last_readers
from firmware_export.planner import Buffer, Overlap, check, plan
from firmware_export.tflite_model import load


def _trace(kernel: str, f: dict, inp: tuple, out: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Replay the loops of ember_nn.c literally: (time of the last read of each input byte, time of the
    write of each output byte), one tick per memory access."""
    n, ih, iw, ic_n = inp
    _, oh, ow, oc_n = out
    last_read = np.full(n * ih * iw * ic_n, -1)
    written = np.full(n * oh * ow * oc_n, -1)
    clock = iter(range(1 << 62))
    for b in range(n):
        for oy in range(oh):
            for ox in range(ow):
                for oc in range(oc_n):
                    if kernel == "ember_conv2d":
                        per_group = oc_n // (ic_n // f["filter_c"])
                        chans = range((oc // per_group) * f["filter_c"], (oc // per_group + 1) * f["filter_c"])
                    elif kernel == "ember_depthwise_conv2d":
                        chans = [oc // f["depth_mult"]]
                    else:
                        chans = [oc]
                    for fy in range(f["kh"]):
                        iy = oy * f["stride_h"] - f["pad_h"] + f.get("dil_h", 1) * fy
                        for fx in range(f["kw"]):
                            ix = ox * f["stride_w"] - f["pad_w"] + f.get("dil_w", 1) * fx
                            if 0 <= iy < ih and 0 <= ix < iw:
                                for c in chans:
                                    last_read[((b * ih + iy) * iw + ix) * ic_n + c] = next(clock)
                    written[((b * oh + oy) * ow + ox) * oc_n + oc] = next(clock)
    return last_read, written


def _corrupts(last_read: np.ndarray, written: np.ndarray, delta: int) -> bool:
    """With the output ``delta`` bytes after the input: is any input byte read after it was overwritten?"""
    o = np.arange(written.size)
    i = o + delta
    ok = (i >= 0) & (i < last_read.size)
    return bool((last_read[i[ok]] > written[o[ok]]).any())


def _random_layer(rng: np.random.Generator) -> tuple[str, dict, tuple, tuple]:
    kernel = str(rng.choice(["ember_conv2d", "ember_depthwise_conv2d", "ember_avg_pool", "ember_max_pool"]))
    ih, iw, cin = (int(v) for v in rng.integers(1, 7, 3))
    kh, kw = (int(v) for v in rng.integers(1, 4, 2))
    f = {"kh": kh, "kw": kw, "stride_h": int(rng.integers(1, 3)), "stride_w": int(rng.integers(1, 3)),
         "pad_h": int(rng.integers(0, kh)), "pad_w": int(rng.integers(0, kw))}
    cout = cin
    if kernel == "ember_conv2d":
        groups = int(rng.choice([g for g in (1, 2, 3) if cin % g == 0]))
        f["filter_c"] = cin // groups
        cout = groups * int(rng.integers(1, 4))
        f["dil_h"], f["dil_w"] = (int(v) for v in rng.integers(1, 3, 2))
    elif kernel == "ember_depthwise_conv2d":
        f["depth_mult"] = int(rng.integers(1, 3))
        cout = cin * f["depth_mult"]
    oh = max(1, (ih + 2 * f["pad_h"] - (kh - 1) * f.get("dil_h", 1) - 1) // f["stride_h"] + 1)
    ow = max(1, (iw + 2 * f["pad_w"] - (kw - 1) * f.get("dil_w", 1) - 1) // f["stride_w"] + 1)
    return kernel, f, (1, ih, iw, cin), (1, oh, ow, cout)


def test_analysis_matches_a_replay_of_the_kernel_loops():
    """For every output offset at or before the input, max_delta separates exactly the offsets that
    corrupt some input byte from those that do not; above 0 it is conservative (never wrong)."""
    rng = np.random.default_rng(3)
    for _ in range(60):
        kernel, f, inp, out = _random_layer(rng)
        readers = last_readers(kernel, f, inp, out)
        last_read, written = _trace(kernel, f, inp, out)
        read = readers >= 0
        assert np.array_equal(read, last_read >= 0), (kernel, f, inp, out)
        max_delta = int((np.flatnonzero(read) - readers[read]).min()) if read.any() else 0
        for delta in range(-written.size - 1, last_read.size + 1):
            if delta <= max_delta:
                assert not _corrupts(last_read, written, delta), (kernel, f, inp, out, delta)
            elif delta <= 0:
                assert _corrupts(last_read, written, delta), (kernel, f, inp, out, delta)


def test_pointwise_conv_may_start_channels_minus_one_bytes_early():
    f = {"kh": 1, "kw": 1, "stride_h": 1, "stride_w": 1, "pad_h": 0, "pad_w": 0, "filter_c": 16}
    readers = last_readers("ember_conv2d", f, (1, 5, 5, 16), (1, 5, 5, 16))
    assert (np.arange(readers.size) - readers).min() == 1 - 16
    assert (np.arange(400) - last_readers("ember_add", {}, (1, 5, 5, 16), (1, 5, 5, 16))).min() == 0


def test_planner_overlaps_only_where_allowed():
    rng = np.random.default_rng(1)
    for _ in range(200):
        chain = [Buffer(i, int(rng.integers(1, 3000)), i, i + 1) for i in range(int(rng.integers(2, 8)))]
        others = [Buffer(100 + j, int(rng.integers(1, 3000)), f, f + int(rng.integers(0, 3)))
                  for j, f in enumerate(rng.integers(0, 8, int(rng.integers(0, 5))))]
        overlaps = [Overlap(a.id, b.id, int(rng.integers(-a.size - 50, 50)))
                    for a, b in itertools.pairwise(chain) if rng.random() < 0.7]
        bufs = chain + others
        total = plan(bufs, align=8, overlaps=overlaps)
        check(bufs, overlaps)
        assert all(b.offset % 8 == 0 and b.offset >= 0 for b in bufs)
        assert total == max(b.offset + b.size for b in bufs)


def test_checker_rejects_an_output_one_byte_too_late():
    a, b = Buffer(0, 100, 0, 1), Buffer(1, 100, 1, 2)
    a.offset, b.offset = 20, 5  # 15 bytes early: exactly the allowed bound
    check([a, b], [Overlap(0, 1, -15)])
    b.offset = 6
    with pytest.raises(AssertionError, match="starts -14 bytes after its input 0; .* safe up to -15"):
        check([a, b], [Overlap(0, 1, -15)])
    with pytest.raises(AssertionError, match="overlap"):
        check([a, b], [])


def test_a_backwards_kernel_output_leads_its_input():
    """Chunks run last first (``chunk_reverse``): the output may only start at or above ``max_delta``."""
    a, b = Buffer(0, 100, 0, 1), Buffer(1, 100, 1, 2)
    rule = Overlap(0, 1, 37, after=True)
    assert plan([a, b], 8, [rule]) == 140 and b.offset - a.offset == 40  # 37 rounded up to the alignment
    b.offset = a.offset + 37
    check([a, b], [rule])
    b.offset -= 1
    with pytest.raises(AssertionError, match="starts 36 bytes after its input 0; .* safe from 37"):
        check([a, b], [rule])


@pytest.fixture(scope="module")
def dscnn_plan(int8_models):
    m = load(int8_models["dscnn"])
    return m, arena.make_plan(m, lower.Lowerer(m, "dscnn_model").lower(), "dscnn_model")


def test_dscnn_arena_is_two_feature_maps(dscnn_plan):
    """The residual block needs its input and the depthwise output; the pointwise output overlaps the
    depthwise output (16 channels: 15 bytes early, 16 aligned), the residual add writes in place."""
    _, p = dscnn_plan
    fmap = 25 * 10 * 16
    producer = {p.roots[ly.output]: ly for ly in p.layers}
    pointwise = [o.max_delta for o in p.overlaps
                 if producer[o.output].op == "CONV_2D" and producer[o.output].fields["kh"] == 1]
    assert pointwise == [-15]
    assert p.arena_bytes == 2 * fmap + 16
    assert max(p.live_bytes) == p.arena_bytes < p.unplanned_bytes


@pytest.mark.parametrize("delta,exact", [(-15, True), (0, False)])
def test_pointwise_offset_decides_bit_exactness(dscnn_plan, verify_plan, delta, exact):
    """At the proven bound (-15, unaligned) the C output is still bit-exact; writing the pointwise conv
    naively in place (0) corrupts it, and the plan checker rejects that offset."""
    _, p = dscnn_plan
    o = next(o for o in p.overlaps if o.max_delta == -15)
    bufs = {b.id: b for b in p.buffers}
    saved = bufs[o.output].offset
    bufs[o.output].offset = bufs[o.input].offset + delta
    try:
        try:
            p.check()
            accepted = True
        except AssertionError:
            accepted = False
        res = verify_plan("dscnn", p)
    finally:
        bufs[o.output].offset = saved
    assert accepted is exact
    assert (res["mismatched_inputs"] == 0) is exact, res
