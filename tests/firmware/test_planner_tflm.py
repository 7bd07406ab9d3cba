"""Arena planner properties and the TensorFlow Lite Micro array output."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest

from firmware_export.planner import Buffer, check, plan


def test_planner_never_overlaps_live_buffers():
    rng = np.random.default_rng(0)
    for _ in range(200):
        bufs = []
        for i in range(int(rng.integers(1, 12))):
            first = int(rng.integers(0, 10))
            bufs.append(Buffer(i, int(rng.integers(1, 5000)), first, first + int(rng.integers(0, 4))))
        total = plan(bufs, align=8)
        check(bufs)
        assert all(b.offset % 8 == 0 for b in bufs)
        peak = max(sum(b.size for b in bufs if b.first <= t <= b.last) for t in range(15))
        assert peak <= total <= sum(b.size + 8 for b in bufs)


def test_planner_reuses_dead_buffers():
    chain = [Buffer(i, 100, i, i + 1) for i in range(6)]  # each buffer read only by the next op
    assert plan(chain, align=4) == 200


@pytest.mark.parametrize("cc", ["gcc", "clang"])
def test_tflm_array_compiles_and_holds_the_model(exported, int8_models, cc, need, tmp_path):
    need(cc)
    d = exported["dscnn"] / "tflm"
    proc = subprocess.run([cc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-c", str(d / "model_data.c"),
                           "-o", str(tmp_path / "m.o")], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    text = (d / "model_data.c").read_text()
    body = text.split("= {", 1)[1].split("};", 1)[0]
    data = bytes(int(x, 16) for x in re.findall(r"0x[0-9a-f]{2}", body))
    assert data == int8_models["dscnn"].read_bytes()
    header = (d / "model_data.h").read_text()
    assert "MicroMutableOpResolver<DSCNN_MODEL_TFLM_OP_COUNT>" in header
    for method in ("AddConv2D", "AddDepthwiseConv2D", "AddAdd", "AddMean", "AddSoftmax", "AddFullyConnected"):
        assert f"(resolver).{method}();" in header
    assert "_Alignas(16)" in text and "DSCNN_MODEL_TFLM_INPUT_SCALE" in header


def test_tflm_arena_is_checked_and_sufficient(exported, int8_models):
    from firmware_export.tflm import measure_arena

    header = (exported["dscnn"] / "tflm" / "model_data.h").read_text()
    declared = int(re.search(r"TFLM_ARENA_BYTES (\d+)", header).group(1))
    measured = measure_arena(int8_models["dscnn"].read_bytes())
    assert measured is not None and "measured with TFLite Micro" in header
    assert declared >= measured


def test_section_attribute(int8_models, tmp_path):
    import firmware_export

    out = firmware_export.export(int8_models["conv1d"], tmp_path / "s", section=".model_flash", measure=False)
    assert '__attribute__((section(".model_flash")))' in (out.out_dir / "tflm" / "model_data.c").read_text()
    assert '.model_flash' in (out.out_dir / "src" / "ember_model.c").read_text()
