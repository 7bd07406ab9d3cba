"""The four MLPerf Tiny reference models (Keras-converted: -1 batch signatures) export and stay bit-exact
with LiteRT's reference kernels: portable C on the host (gcc, clang) and under qemu, CMSIS-NN calls
under qemu (built with -Wall -Wextra -Werror), and ``--profile`` counts instructions per layer."""

from __future__ import annotations

import json

import numpy as np
import pytest

import firmware_export
from firmware_export import quant
from firmware_export.profile import check_output, profile
from sdk.errors import ExportError

INPUTS = {"kws": 60, "ad": 60, "vww": 8, "ic": 12}  # host inputs per model (LiteRT's reference is slow)


@pytest.fixture(scope="module")
def portable(mlperf, tmp_path_factory):
    d = tmp_path_factory.mktemp("mlperf")
    return {k: firmware_export.export(p, d / k, name=k, measure=False).out_dir for k, p in mlperf.items()}


@pytest.mark.parametrize("name", ["kws", "vww", "ad", "ic"])
def test_mlperf_model_exports_bit_exact_on_host(portable, mlperf, name, need):
    for cc in ("gcc", "clang") if name in ("kws", "ad") else ("gcc",):
        need(cc)
        res = firmware_export.verify_host(portable[name], mlperf[name], n=INPUTS[name], cc=cc, seed=3)
        assert res["max_abs_diff"] == 0 and res["mismatched_inputs"] == 0, res


@pytest.mark.parametrize("name", ["kws", "ad"])
def test_mlperf_model_runs_under_qemu(portable, name, need):
    need("arm-none-eabi-gcc")
    need("qemu-system-arm")
    res = firmware_export.verify_qemu(portable[name])
    assert res["ok"] and res["output"].startswith("ember-verify: 8/8"), res


@pytest.mark.parametrize("name, io", [("kws", "caller"), ("vww", "arena")])
def test_cmsis_nn_export_bit_exact_under_qemu(mlperf, cmsis_nn_dir, tmp_path, name, io, need):
    """Generated CMSIS-NN calls (conv, depthwise, pooling, softmax; VWW's 1x1 convolutions in pixel
    chunks so they may overlap their input) + Ember's kernels where faster (FC, table-driven ADD),
    compiled with -Werror for the M4 (DSP paths) and for the host (C paths)."""
    need("arm-none-eabi-gcc")
    need("qemu-system-arm")
    res = firmware_export.export(mlperf[name], tmp_path / name, name=name, kernels="cmsis-nn",
                                 cmsis_nn_dir=cmsis_nn_dir, io=io)
    if name == "vww":
        assert "arm_convolve_1x1_s8_fast(" in (res.out_dir / "src" / "vww.c").read_text()
    src = (res.out_dir / "src" / f"{name}.c").read_text()
    assert '#include "arm_nnfunctions.h"' in src and "arm_convolve_wrapper_s8(" in src
    assert not list((res.out_dir / "src").glob("arm_*.c")), "CMSIS-NN must not be copied into the export"
    assert res.kernels == "cmsis-nn" and res.measured
    q = firmware_export.verify_qemu(res.out_dir)
    assert q["ok"] and q["output"].startswith("ember-verify: 8/8"), q
    host = firmware_export.verify_host(res.out_dir, mlperf[name], n=10, cc="gcc", seed=5)
    assert host["max_abs_diff"] == 0, host
    prof = profile(res.out_dir)
    assert check_output(prof, mlperf[name])
    assert any(ly["kernel"].startswith("arm_") for ly in prof["layers"])


def test_profile_counts_every_layer_exactly(portable, mlperf, need):
    need("arm-none-eabi-gcc")
    need("qemu-system-arm")
    a, b = profile(portable["kws"]), profile(portable["kws"])
    assert a["instructions"] == b["instructions"] > 1_000_000  # exact, repeatable counts
    layers = sum(ly["instructions"] for ly in a["layers"])
    assert 0.99 * a["instructions"] < layers <= a["instructions"] * 1.01
    conv = [ly for ly in a["layers"] if ly["op"] == "CONV_2D"]
    assert conv and all(ly["instructions"] > 0 and ly["macs_per_instruction"] > 0 for ly in conv)
    assert check_output(a, mlperf["kws"])
    wrong = dict(a, output=bytes(len(a["output"])))
    assert not check_output(wrong, mlperf["kws"])


def test_cli_profile_and_kernels(mlperf, cmsis_nn_dir, tmp_path, capsys, need):
    from sdk.cli import main

    need("arm-none-eabi-gcc")
    need("qemu-system-arm")
    assert main(["export-c", str(mlperf["ad"]), "--out", str(tmp_path / "ad"), "--name", "ad", "--kernels",
                 "cmsis-nn", "--cmsis-nn-dir", str(cmsis_nn_dir), "--profile", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kernels"] == "cmsis-nn" and report["profile"]["output_matches_litert"]
    assert len(report["profile"]["layers"]) == 10 and report["profile"]["instructions"] > 100_000
    assert "CMSIS_NN_DIR" in (tmp_path / "ad" / "Makefile").read_text()


def test_cmsis_nn_choice_errors(mlperf, cmsis_nn_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("CMSIS_NN_DIR", raising=False)
    with pytest.raises(ExportError, match="CMSIS_NN_DIR"):
        firmware_export.export(mlperf["ad"], tmp_path / "a", kernels="cmsis-nn")
    with pytest.raises(ExportError, match="not a CMSIS-NN folder"):
        firmware_export.export(mlperf["ad"], tmp_path / "a", kernels="cmsis-nn", cmsis_nn_dir=tmp_path)
    with pytest.raises(ExportError, match="DSP extension"):
        firmware_export.export(mlperf["ad"], tmp_path / "a", target="cortex-m0plus", kernels="cmsis-nn",
                               cmsis_nn_dir=cmsis_nn_dir)
    with pytest.raises(ExportError, match="choose one of"):
        firmware_export.export(mlperf["ad"], tmp_path / "a", kernels="fast")
    assert not (tmp_path / "a").exists()


def test_fc_fixed_point_rescale_is_exact():
    """The integer form of LiteRT's float64 FULLY_CONNECTED rescale matches round(acc * scale) for every
    accumulator (checked here independently, on a wider range than the exporter's proof uses)."""
    rng = np.random.default_rng(0)
    scales = rng.uniform(2e-3, 1e-2, size=16)
    fixed = quant.fc_fixed_point(scales, 3, -128, 127)
    assert fixed is not None
    q, k = fixed
    for s, qc in zip(scales, q):
        acc = np.arange(int(-300 / s), int(300 / s), dtype=np.int64)
        want = np.clip(quant.round_half_away(acc * s) + 3, -128, 127)
        mag = (np.abs(acc).astype(object) * qc + (1 << (k - 1))) >> k
        got = np.clip(np.where(acc < 0, -mag, mag).astype(np.int64) + 3, -128, 127)
        assert np.array_equal(want, got)
    assert quant.round_half_away(np.array([2.5, -2.5, 0.49999999999999994])).tolist() == [3, -3, 0]


def test_cmsis_fc_rounds_unlike_litert_so_ember_keeps_it(mlperf):
    """TFLite Micro's integer requantization (CMSIS-NN's) differs from LiteRT's double rescale near
    halves on the KWS classifier: the exporter proves it and keeps Ember's exact kernel."""
    from firmware_export import cmsis, lower
    from firmware_export.tflite_model import load

    m = load(mlperf["kws"])
    layers = lower.Lowerer(m, "k").lower()
    fc = next(ly for ly in layers if ly.op == "FULLY_CONNECTED")
    assert not cmsis.fc_integer_matches_double(fc)
    cmsis.use_cmsis(m, layers)
    assert fc.kernel == "ember_fully_connected" and "fx_mult" in fc.fields
    assert {ly.kernel for ly in layers} >= {"arm_convolve_wrapper_s8", "arm_depthwise_conv_wrapper_s8"}


def test_fc_without_an_integer_form_keeps_the_double_rescale(mlperf, tmp_path, monkeypatch, need):
    """Where no shift reproduces LiteRT's rounding (per-channel scales spanning many octaves), the
    exporter falls back to the float64 rescale, still bit-exact."""
    need("gcc")
    monkeypatch.setattr(quant, "fc_fixed_point", lambda *a: None)
    out = firmware_export.export(mlperf["kws"], tmp_path / "k", name="k", measure=False).out_dir
    assert "_scale[" in (out / "src" / "k.c").read_text() and "_fxmult[" not in (out / "src" / "k.c").read_text()
    assert firmware_export.verify_host(out, mlperf["kws"], n=20, cc="gcc")["max_abs_diff"] == 0


def test_io_in_arena_reuses_the_input(mlperf, tmp_path, need):
    """--io arena: the input and output live in the arena (NAME_input/NAME_run/NAME_output); the bytes of
    VWW's 27 KiB input are reused by later layers, so the total shrinks; results stay bit-exact."""
    need("gcc")
    caller = firmware_export.export(mlperf["vww"], tmp_path / "c", name="v", measure=False)
    arena = firmware_export.export(mlperf["vww"], tmp_path / "a", name="v", measure=False, io="arena")
    assert arena.io == "arena" and arena.io_bytes == 0 and caller.io_bytes == 96 * 96 * 3 + 2
    assert arena.arena_bytes < caller.arena_bytes + caller.io_bytes  # the input's bytes are reused
    header = (arena.out_dir / "src" / "v.h").read_text()
    assert "int8_t *v_input(void);" in header and "int v_run(void);" in header
    assert firmware_export.verify_host(arena.out_dir, mlperf["vww"], n=4, cc="gcc")["max_abs_diff"] == 0
    with pytest.raises(ExportError, match="--io 'stack'"):
        firmware_export.export(mlperf["ad"], tmp_path / "x", io="stack")


@pytest.mark.parametrize("name", ["kws", "ic"])
def test_cmsis_nn_ram_under_six_tenths_of_tflm(mlperf, cmsis_nn_dir, tmp_path, name, need):
    """KWS: its 1x1 convolutions run in two pixel chunks, alternately last chunk first, so the chain of
    overlapping maps does not drift; IC: the first residual block (conv, conv, ADD) runs row by row, the
    ADD in place over the block input. The arena (input and output inside it, as TFLM's tensors) stays
    under 0.6x TFLite Micro + CMSIS-NN's RAM figure, and the output stays bit-exact."""
    need("gcc")
    anchor = mlperf[name].parents[2] / "anchors" / "tflm-cortex-m4" / name / "cmsis_nn_int8.json"
    tflm_ram = json.loads(anchor.read_text())["ram_static_total"]
    res = firmware_export.export(mlperf[name], tmp_path / name, name=name, kernels="cmsis-nn",
                                 cmsis_nn_dir=cmsis_nn_dir, io="arena", measure=False)
    assert res.arena_bytes <= 0.6 * tflm_ram, (res.arena_bytes, tflm_ram)
    src = (res.out_dir / "src" / f"{name}.c").read_text()
    if name == "kws":
        assert "p0 >= 0; p0 -= 63" in src and "p0 < 125; p0 += 63" in src  # both directions
    else:
        assert "fused row by row" in src and src.count("arm_convolve_s8(") == 2
    host = firmware_export.verify_host(res.out_dir, mlperf[name], n=6, cc="gcc", seed=11)
    assert host["max_abs_diff"] == 0 and host["mismatched_inputs"] == 0, host
