"""Manifest schema, variant verification, ModelStore marking bad variants unusable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sdk.device import device_class
from sdk.errors import ModelError
from sdk.models.manifest import Manifest, sha256_file
from sdk.models.store import ModelStore


def _edit(folder: Path, fn) -> None:
    p = folder / "manifest.json"
    data = json.loads(p.read_text())
    fn(data)
    p.write_text(json.dumps(data))


def test_roundtrip_keeps_everything(fresh_folder: Path) -> None:
    m = Manifest.load(fresh_folder)
    m.set_metrics("int8", "onnxruntime", "aarch64-cortex-a76", {"latency_ms_p50": 1.5, "accuracy": 0.9})
    m.reference_profile = {"mean": [0.1, 0.2]}
    m.extra["license"] = "Apache-2.0"
    m.save()
    again = Manifest.load(fresh_folder)
    assert again.to_dict() == m.to_dict()
    assert again.variant("int8", "onnxruntime").metrics["aarch64-cortex-a76"]["accuracy"] == 0.9
    assert again.variant("fp32").sha256 == sha256_file(fresh_folder / "model.fp32.onnx")


@pytest.mark.parametrize("edit,match", [
    (lambda d: d.pop("variants"), "missing required key 'variants'"),
    (lambda d: d.update(schema_version=7), "schema_version"),
    (lambda d: d["input"].update(layout="HWCN"), "input.layout"),
    (lambda d: d["input"].update(shape="1x3"), "input.shape"),
])
def test_invalid_manifest_is_a_model_error(fresh_folder: Path, edit, match: str) -> None:
    _edit(fresh_folder, edit)
    with pytest.raises(ModelError, match=match):
        Manifest.load(fresh_folder)


def test_save_failures_are_model_errors_and_leave_no_temp_file(fresh_folder: Path, tmp_path: Path) -> None:
    from sdk.util.files import write_text_atomic

    m = Manifest.load(fresh_folder)
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ModelError, match="cannot write"):
        m.save(tmp_path / "a_file")  # a file where the folder should be
    (tmp_path / "dir" / "manifest.json").mkdir(parents=True)  # a folder where the file should be
    with pytest.raises(ModelError, match="cannot write"):
        m.save(tmp_path / "dir")
    assert [p.name for p in (tmp_path / "dir").iterdir()] == ["manifest.json"]
    assert write_text_atomic(tmp_path / "t.txt", "one") == tmp_path / "t.txt"
    write_text_atomic(tmp_path / "t.txt", "two")
    assert (tmp_path / "t.txt").read_text() == "two"


def test_missing_or_broken_manifest(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no manifest"):
        Manifest.load(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ModelError, match="not a readable JSON"):
        Manifest.load(tmp_path)


def test_unknown_tier_and_backend_mark_only_that_variant(fresh_folder: Path) -> None:
    def add(d):
        d["variants"] += [{"tier": "int4", "file": "model.fp32.onnx", "backend": "onnxruntime"},
                          {"tier": "fp16", "file": "model.fp16.onnx", "backend": "tensorrt"}]
    _edit(fresh_folder, add)
    store = ModelStore(fresh_folder, device_class="test")
    bad = {v.key: v.problem for v in store.manifest.variants if not v.usable}
    assert set(bad) == {("int4", "onnxruntime"), ("fp16", "tensorrt")}
    assert "int4" in bad[("int4", "onnxruntime")] and "tensorrt" in bad[("fp16", "tensorrt")]
    assert {v.tier for v in store.usable()} == {"fp32", "fp16", "int8"}


def test_sha_mismatch_truncated_and_missing_files(fresh_folder: Path) -> None:
    (fresh_folder / "model.fp16.onnx").unlink()
    data = (fresh_folder / "model.int8.onnx").read_bytes()
    (fresh_folder / "model.int8.onnx").write_bytes(data[:-10])
    _edit(fresh_folder, lambda d: d["variants"][0].update(sha256="0" * 64))
    store = ModelStore(fresh_folder, device_class="test")
    problems = {v.tier: v.problem for v in store.manifest.variants}
    assert "sha256 does not match" in problems["fp32"]
    assert "missing" in problems["fp16"]
    assert "truncated" in problems["int8"]
    assert store.usable() == []


def test_add_variant_and_metrics_validation(fresh_folder: Path) -> None:
    m = Manifest.load(fresh_folder)
    with pytest.raises(ModelError, match="not found"):
        m.add_variant("fp16", "absent.onnx", "tinygrad")
    with pytest.raises(ModelError, match="backend"):
        m.add_variant("fp16", "model.fp16.onnx", "caffe")
    v = m.add_variant("fp16", "model.fp16.onnx", "tinygrad")
    assert v.size_bytes == (fresh_folder / "model.fp16.onnx").stat().st_size
    with pytest.raises(ModelError, match="latency_ms_p50"):
        m.set_metrics("fp16", "tinygrad", "x", {"latency_ms_p50": "fast"})
    m.variants.append(m.variants[0])
    with pytest.raises(ModelError, match="duplicate"):
        m.save()


def test_device_class_names_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    name = device_class()
    assert name and " " not in name
    monkeypatch.setenv("EMBER_DEVICE_CLASS", "jetson-orin-nano")
    assert device_class() == "jetson-orin-nano"
    assert device_class("rpi5") == "rpi5"
