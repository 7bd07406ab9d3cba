"""Row fusion: a window layer computes only the rows the next one needs, into a ring buffer."""

from __future__ import annotations

import dataclasses

import pytest

from firmware_export import arena, lower
from firmware_export.arena import Fusion
from firmware_export.tflite_model import load
from sdk.errors import ExportError


def _layers(int8_models, name):
    m = load(int8_models[name])
    return m, lower.Lowerer(m, f"{name}_model").lower()


def test_tiny_convnet_keeps_three_rows_of_the_first_conv(int8_models):
    """16x16x4 first conv feeding a 3x3 stride-2 conv: a ring of 3 rows (192 B) instead of 1024 B;
    the arena is the second conv's 8x8x8 output plus the ring (the third conv overlaps the second),
    plus the two convolutions' receptive-field patches, alive through the fused pair."""
    m, layers = _layers(int8_models, "tiny_convnet")
    p = arena.make_plan(m, layers, "tiny_convnet_model")
    assert p.fusions == [Fusion(0, 3)]
    patches = [ly.scratch_bytes for ly in layers[:2]]
    assert patches == [28, 36]  # 3x3x3 and 3x3x4 taps, padded to 4 bytes
    assert 8 * 8 * 8 + 3 * 16 * 4 + sum(patches) <= p.arena_bytes <= 8 * 8 * 8 + 3 * 16 * 4 + 28 + 4 + 36
    assert arena.make_plan(m, layers, "x", fusions=[]).arena_bytes > p.arena_bytes


def test_footprint_names_the_ring(exported):
    import json

    layers = json.loads((exported["tiny_convnet"] / "footprint.json").read_text())["layers"]
    assert [ly["ring_rows"] for ly in layers][:2] == [3, None]


def test_every_producer_and_consumer_kernel_is_bit_exact(int8_models, verify_plan):
    """Each possible pair of rows_net (conv, max pool, depthwise conv, average pool as producer and as
    consumer) run fused on its own matches LiteRT."""
    m, layers = _layers(int8_models, "rows")
    cands = arena.candidates(m, layers)
    kinds = {(layers[f.producer].kernel, layers[f.producer + 1].kernel) for f in cands}
    assert {a for a, _ in kinds} == {b for _, b in kinds} == set(arena.ROW_KERNELS)
    for cand in cands:
        res = verify_plan("rows", arena.make_plan(m, layers, "rows_model", fusions=[cand]))
        assert res["mismatched_inputs"] == 0, (cand, res)


def test_a_ring_one_row_short_corrupts_the_output(int8_models, verify_plan):
    m, layers = _layers(int8_models, "tiny_convnet")
    p = arena.make_plan(m, layers, "tiny_convnet_model")
    p.fusions = [dataclasses.replace(f, ring_rows=f.ring_rows - 1) for f in p.fusions]
    assert verify_plan("tiny_convnet", p)["mismatched_inputs"] > 0


def test_impossible_fusions_are_refused(int8_models):
    m, layers = _layers(int8_models, "rows")
    cands = arena.candidates(m, layers)
    with pytest.raises(ExportError, match="not possible"):
        arena.make_plan(m, layers, "x", fusions=cands[:2])  # two pairs sharing a layer
    with pytest.raises(ExportError, match="not possible"):
        arena.make_plan(m, layers, "x", fusions=[Fusion(len(layers) - 2, 1)])  # dense -> softmax
