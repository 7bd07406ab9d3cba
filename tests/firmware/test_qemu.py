"""The generated code, cross-compiled for Cortex-M, runs under QEMU and matches the host reference."""

from __future__ import annotations

import re
import shutil

import pytest

import firmware_export


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


def test_cortex_m0plus_build_runs(int8_models, tmp_path):
    out = firmware_export.export(int8_models["tiny_convnet"], tmp_path / "m0", target="cortex-m0plus").out_dir
    res = firmware_export.verify_qemu(out)
    assert res["ok"] and res["cpu"] == "cortex-m0plus", res


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
