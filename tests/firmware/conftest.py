"""Fixtures: int8 test models made with the project's ONNX → .tflite converter, exported once per session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[3] / "shared"  # ../shared beside the checkout


@pytest.fixture(scope="session")
def fw_models():
    from firmware_export import sample_models

    return sample_models


@pytest.fixture(scope="session")
def int8_models(tmp_path_factory, fw_models) -> dict[str, Path]:
    """name -> int8 .tflite covering every kernel between them."""
    from sdk.models.builtin import tiny_convnet

    d = tmp_path_factory.mktemp("fw_models")
    specs = {
        "tiny_convnet": (lambda p: tiny_convnet(p, input_hw=(16, 16), channels=(4, 8), classes=5), [1, 3, 16, 16]),
        "dscnn": (fw_models.dscnn, [1, 1, 49, 10]),
        "conv1d": (fw_models.conv1d_net, [1, 4, 64]),
        "flatten": (fw_models.flatten_net, [1, 2, 8, 8]),
        "rows": (fw_models.rows_net, [1, 2, 20, 20]),
    }
    out = {}
    for name, (make, shape) in specs.items():
        onnx_path = make(d / f"{name}.onnx")
        out[name] = fw_models.to_int8(Path(onnx_path), d / f"{name}.tflite", shape)
    return out


@pytest.fixture(scope="session")
def exported(tmp_path_factory, int8_models) -> dict[str, Path]:
    """name -> exported folder (cortex-m4), each exported once."""
    import firmware_export

    d = tmp_path_factory.mktemp("fw_out")
    return {name: firmware_export.export(path, d / name, target="cortex-m4", name=f"{name}_model").out_dir
            for name, path in int8_models.items()}



@pytest.fixture(scope="session")
def verify_plan(exported, int8_models, tmp_path_factory, need):
    """``verify_plan(name, plan)``: the exported folder of test model ``name`` with its C source
    regenerated from ``plan`` (an ``arena.Plan``), compiled with gcc and compared with LiteRT on 200
    inputs; returns ``verify_host``'s counts."""
    import firmware_export
    from firmware_export import codegen
    from firmware_export.tflite_model import load

    need("gcc")

    def run(name: str, plan) -> dict:
        d = tmp_path_factory.mktemp(f"plan_{name}")
        shutil.copytree(exported[name], d, dirs_exist_ok=True)
        src = codegen.source(load(int8_models[name]), plan, f"{name}_model", None)
        (d / "src" / f"{name}_model.c").write_text(src)
        return firmware_export.verify_host(d, int8_models[name], n=200, cc="gcc")
    return run


@pytest.fixture(scope="session")
def mlperf():
    """``../shared/models/mlperf_tiny`` name -> .tflite (the MLPerf Tiny reference models; read-only)."""
    d = SHARED / "models" / "mlperf_tiny"
    if not d.is_dir():
        pytest.skip(f"MLPerf Tiny models not found at {d}")
    return {"kws": d / "kws_ref_model.tflite", "vww": d / "vww_96_int8.tflite", "ad": d / "ad01_int8.tflite",
            "ic": d / "pretrainedResnet_quant.tflite"}


@pytest.fixture(scope="session")
def cmsis_nn_dir():
    """Arm CMSIS-NN sources for the --kernels cmsis-nn builds (``../shared/third_party``, never copied)."""
    d = SHARED / "third_party" / "CMSIS-NN"
    if not (d / "Include" / "arm_nnfunctions.h").is_file():
        pytest.skip(f"CMSIS-NN not found at {d}")
    return d


@pytest.fixture(scope="session")
def bit_exact(need):
    """``bit_exact(out_dir, model, n, seed, qemu=False)``: the exported C gives LiteRT's outputs exactly
    on ``n`` seeded inputs with gcc and clang (and, with ``qemu``, on a Cortex-M under qemu)."""
    import firmware_export

    def check(out_dir: Path, model: Path, n: int, seed: int, qemu: bool = False) -> None:
        for cc in ("gcc", "clang"):
            need(cc)
            r = firmware_export.verify_host(out_dir, model, n=n, cc=cc, seed=seed)
            assert r["max_abs_diff"] == 0 and r["mismatched_inputs"] == 0, r
        if qemu:
            need("arm-none-eabi-gcc")
            need("qemu-system-arm")
            assert firmware_export.verify_qemu(out_dir)["ok"]

    return check
