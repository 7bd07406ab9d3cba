"""The generated code, cross-compiled for Cortex-M, runs under QEMU and matches the host reference."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess

import pytest

import firmware_export
from firmware_export import toolchain
from firmware_export.targets import TARGETS


@pytest.fixture(autouse=True)
def _tools(need):
    need("arm-none-eabi-gcc")
    need("qemu-system-arm")


@pytest.mark.parametrize("name", ["dscnn", "tiny_convnet", "conv1d", "flatten", "rows"])
def test_cortex_m4_qemu_matches(exported, name):
    res = firmware_export.verify_qemu(exported[name])
    assert res["ok"], res
    assert res["exit_status"] == 0 and res["machine"] == "mps2-an386"
    assert re.match(r"ember-verify: 8/8 [0-9a-f]+$", res["output"])
    assert res["text"] > 0 and res["bss"] > 0


def test_cortex_m0plus_code_runs_on_a_cortex_m0_machine(int8_models, tmp_path):
    """M0+ code (ARMv6-M) runs on qemu's micro:bit, a Cortex-M0 (same instruction set; qemu has no M0+
    machine), and matches LiteRT. The control: the same program built for an M3 faults there, so an
    instruction outside ARMv6-M in the generated code would fail this test (on mps2-an385, an M3, it
    would not)."""
    out = firmware_export.export(int8_models["tiny_convnet"], tmp_path / "m0", target="cortex-m0plus").out_dir
    res = firmware_export.verify_qemu(out)
    assert res["ok"] and res["cpu"] == "cortex-m0plus" and res["machine"] == "microbit", res
    assert re.match(r"ember-verify: 8/8 [0-9a-f]+$", res["output"])
    assert "microbit.ld" in (out / "Makefile").read_text() and (out / "mcu" / "microbit.ld").is_file()
    m3 = dataclasses.replace(TARGETS["cortex-m0plus"], cflags=("-mcpu=cortex-m3", "-mthumb", "-mfloat-abi=soft"))
    build = toolchain.arm_build(out / "src", "ember_model", m3, tmp_path / "m3", out / "mcu" / "verify_main.c",
                                extra_include=out / "mcu")
    assert toolchain.qemu_run(build.elf, "mps2-an385", 60)[0] == 0  # M3 code on an M3: fine
    rc, text = toolchain.qemu_run(build.elf, "microbit", 60)
    assert rc != 0 and "fault" in text.lower()  # M3 code on an M0: a fault, not a pass


def test_cortex_m7_code_runs_on_a_cortex_m7_machine(int8_models, tmp_path):
    out = firmware_export.export(int8_models["tiny_convnet"], tmp_path / "m7", target="cortex-m7").out_dir
    res = firmware_export.verify_qemu(out)
    assert res["ok"] and res["cpu"] == "cortex-m7" and res["machine"] == "mps2-an500", res
    assert re.match(r"ember-verify: 8/8 [0-9a-f]+$", res["output"])


def _dscnn_matches_litert_on(model, out_dir, kernels, cmsis_nn_dir, target, machine):
    """Export for ``target``, run the 8 verification inputs on qemu's ``machine`` (its own linker script)."""
    out = firmware_export.export(model, out_dir, target=target, kernels=kernels,
                                 cmsis_nn_dir=cmsis_nn_dir if kernels == "cmsis-nn" else None).out_dir
    res = firmware_export.verify_qemu(out)
    assert res["ok"] and res["cpu"] == target and res["machine"] == machine, res
    assert re.match(r"ember-verify: 8/8 [0-9a-f]+$", res["output"])
    assert (out / "mcu" / f"{machine.replace('-', '_')}.ld").is_file()
    return out


@pytest.mark.parametrize("kernels", ["portable", "cmsis-nn"])
def test_cortex_m33_code_runs_on_a_cortex_m33_machine(int8_models, cmsis_nn_dir, tmp_path, kernels):
    """ARMv8-M Mainline (DSP extension: SMLAD paths and CMSIS-NN's DSP kernels) on qemu's mps2-an505,
    in the Secure state it resets into (its own linker script), matching LiteRT."""
    _dscnn_matches_litert_on(int8_models["dscnn"], tmp_path / kernels, kernels, cmsis_nn_dir, "cortex-m33", "mps2-an505")


@pytest.mark.parametrize("kernels", ["portable", "cmsis-nn"])
def test_cortex_m55_code_runs_on_a_cortex_m55_machine(int8_models, cmsis_nn_dir, tmp_path, kernels):
    """ARMv8.1-M with Helium (MVE) on qemu's mps3-an547: CMSIS-NN built with -mcpu=cortex-m55 takes its
    MVE kernels (ARM_MATH_MVEI, checked below in the library's objects), and the result matches LiteRT."""
    out = _dscnn_matches_litert_on(int8_models["dscnn"], tmp_path / kernels, kernels, cmsis_nn_dir, "cortex-m55",
                                   "mps3-an547")
    if kernels == "cmsis-nn":  # the linked CMSIS-NN code is Helium code (q registers), not the DSP path
        build = toolchain.arm_build(out / "src", "ember_model", TARGETS["cortex-m55"], tmp_path / "elf",
                                    out / "mcu" / "verify_main.c", extra_include=out / "mcu", cmsis_dir=cmsis_nn_dir)
        asm = subprocess.run(["arm-none-eabi-objdump", "-d", str(build.elf)], check=True, capture_output=True,
                             text=True).stdout
        mve = [ln for ln in asm.splitlines() if re.search(r"\bq[0-7]\b", ln)]
        assert len(mve) > 50, len(mve)  # 138 here; the M33 (DSP) build of the same model: 1


def test_exit_status_carries_a_mismatch(exported, tmp_path):
    d = tmp_path / "broken"
    shutil.copytree(exported["dscnn"], d)
    data = d / "mcu" / "ember_verify_data.h"
    text = data.read_text()
    head, tail = text.split("ember_verify_expected", 1)
    tail = re.sub(r"\{\s*(-?\d+)", lambda m: "{" + str(-1 - int(m.group(1))), tail, count=1)
    data.write_text(head + "ember_verify_expected" + tail)
    res = firmware_export.verify_qemu(d)
    assert not res["ok"] and res["exit_status"] == 1
    assert res["output"].startswith("ember-verify: 7/8")
