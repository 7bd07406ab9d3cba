"""Manifests an attacker writes: variant files outside the model folder are refused before anything
opens them; absurd nesting and empty variant lists are clear errors, not crashes or a silent pass."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from sdk.cli import main
from sdk.errors import ModelError
from sdk.models.manager import ModelManager
from sdk.models.manifest import Manifest, sha256_file
from sdk.models.store import ModelStore

_OPENED: list[str] = []
_WATCH: list[str] = []


def _audit(event: str, args: tuple) -> None:
    if event == "open" and _WATCH and isinstance(args[0], (str, bytes, Path)):
        name = str(Path(args[0] if not isinstance(args[0], bytes) else args[0].decode(errors="replace")))
        if any(name.startswith(w) for w in _WATCH):
            _OPENED.append(name)


sys.addaudithook(_audit)


def _point_fp32_at(folder: Path, file: str, sha: str | None = None) -> None:
    p = folder / "manifest.json"
    data = json.loads(p.read_text())
    for v in data["variants"]:
        if v["tier"] == "fp32":
            v["file"] = file
            if sha:
                v["sha256"] = sha
            v.pop("size_bytes", None)
    p.write_text(json.dumps(data))


@pytest.fixture
def outside(fresh_folder: Path, tmp_path: Path) -> Path:
    """A valid model file next to (not inside) the model folder, watched for opens."""
    d = tmp_path / "outside"
    d.mkdir()
    shutil.copy(fresh_folder / "model.fp32.onnx", d / "x.onnx")
    _OPENED.clear()
    _WATCH[:] = [str(d)]
    yield d / "x.onnx"
    _WATCH.clear()


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
def test_variant_outside_the_folder_is_unusable_and_never_opened(fresh_folder: Path, outside: Path,
                                                                 how: str, capsys) -> None:
    if how == "dotdot":
        name = "../outside/x.onnx"
    elif how == "absolute":
        name = str(outside)
    else:
        (fresh_folder / "link.onnx").symlink_to(outside)
        name = "link.onnx"
    _point_fp32_at(fresh_folder, name, sha256_file(outside))
    _OPENED.clear()
    store = ModelStore(fresh_folder, device_class="test")
    fp32 = store.manifest.variant("fp32", "onnxruntime")
    assert not fp32.usable
    assert "inside the model folder" in fp32.problem or "outside the model folder" in fp32.problem
    assert {v.tier for v in store.usable()} == {"fp16", "int8"}
    with pytest.raises(ModelError, match="unusable"):
        store.load(fp32)
    assert main(["models", "verify", str(fresh_folder)]) == 1
    assert "model folder" in capsys.readouterr().out
    mgr = ModelManager(fresh_folder, measure="never", initial=None, use_default_rules=False)
    assert mgr.current != ("fp32", "onnxruntime")
    mgr.close()
    assert _OPENED == []


def test_symlink_swapped_in_after_loading_is_caught_at_load(fresh_folder: Path, outside: Path) -> None:
    store = ModelStore(fresh_folder, device_class="test")
    fp32 = store.manifest.variant("fp32", "onnxruntime")
    assert fp32.usable
    (fresh_folder / "model.fp32.onnx").unlink()
    (fresh_folder / "model.fp32.onnx").symlink_to(outside)
    _OPENED.clear()
    with pytest.raises(ModelError, match="outside the model folder"):
        store.load(fp32)
    assert not fp32.usable and _OPENED == []


def test_symlink_inside_the_folder_is_fine(fresh_folder: Path) -> None:
    (fresh_folder / "sub").mkdir()
    (fresh_folder / "model.fp32.onnx").rename(fresh_folder / "sub" / "real.onnx")
    (fresh_folder / "model.fp32.onnx").symlink_to(fresh_folder / "sub" / "real.onnx")
    store = ModelStore(fresh_folder, device_class="test")
    assert store.manifest.variant("fp32", "onnxruntime").usable
    store.load(store.manifest.variant("fp32", "onnxruntime"), warmup=1).close()


@pytest.mark.parametrize("name", ["../x.onnx", "sub/../../x.onnx", "/etc/passwd", "C:\\x.onnx", "..\\x.onnx", ""])
def test_add_variant_refuses_paths_outside(fresh_folder: Path, name: str) -> None:
    m = Manifest.load(fresh_folder)
    with pytest.raises(ModelError, match="cannot add variant"):
        m.add_variant("fp16", name, "tinygrad", hash_file=False)


@pytest.mark.parametrize("where,depth", [("root", 100_000), ("extra_key", 950), ("reference_profile", 100)])
def test_deeply_nested_manifest_is_a_model_error(fresh_folder: Path, where: str, depth: int, capsys) -> None:
    p = fresh_folder / "manifest.json"
    data = json.loads(p.read_text())
    if where == "root":  # deeper than the JSON parser goes
        p.write_text("[" * depth + "]" * depth)
    else:  # parses, but deeper than any manifest needs (and than recursive copies manage)
        data[where] = json.loads('{"a":' * depth + "1" + "}" * depth)
        p.write_text(json.dumps(data))
    with pytest.raises(ModelError, match="nested too deeply"):
        ModelStore(fresh_folder, device_class="test")
    with pytest.raises(ModelError, match="manifest"):
        ModelManager(fresh_folder, measure="never")
    assert main(["models", "verify", str(fresh_folder)]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_verify_fails_on_a_manifest_without_variants(fresh_folder: Path, capsys) -> None:
    p = fresh_folder / "manifest.json"
    p.write_text(json.dumps({**json.loads(p.read_text()), "variants": []}))
    assert main(["models", "verify", str(fresh_folder)]) == 2
    assert "lists no variants" in capsys.readouterr().err


def test_nested_manifest_refused_whatever_the_recursion_limit(fresh_folder: Path) -> None:
    """tinygrad raises the interpreter's recursion limit to 10,000 on import: depth is checked, not caught."""
    import sys

    p = fresh_folder / "manifest.json"
    data = json.loads(p.read_text())
    depth = 950
    data["extra_key"] = json.loads('{"a":' * depth + "1" + "}" * depth)
    p.write_text(json.dumps(data))
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(10_000)
    try:
        with pytest.raises(ModelError, match="nested too deeply"):
            ModelStore(fresh_folder, device_class="test")
    finally:
        sys.setrecursionlimit(old)


def test_absurd_input_shape_is_refused_before_allocating(fresh_folder: Path) -> None:
    p = fresh_folder / "manifest.json"
    data = json.loads(p.read_text())
    data["input"]["shape"] = [1, 3, 100_000, 100_000]  # 120 GB of example input
    p.write_text(json.dumps(data))
    store = ModelStore(fresh_folder, device_class="test")
    with pytest.raises(ModelError, match="more than .* values"):
        store.load(store.usable()[0])
