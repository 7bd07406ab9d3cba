"""Benchmark of the C exporter: RAM/flash of the standalone C code vs TensorFlow Lite Micro.

Headline RAM, like for like: our arena plus the input/output buffers (the caller's, outside our
arena) against TFLite Micro's tensor arena (its tensors, inputs and outputs included; without its
persistent bookkeeping, whose size here is that of a 64-bit build). Goal: <= 0.6x per model;
``ram_meets_goal`` says which models miss it.

For each model: our arena (planned at export time), flash from arm-none-eabi-size of a Cortex-M4
build that runs the model, bit-exactness against LiteRT's reference kernels on 1000 seeded inputs,
the QEMU (mps2-an386) verdict, and TFLite Micro's arena as its recording allocator reports it.
TFLite Micro's flash is not measured: null (its C++ sources are not on this machine, PyPI has only
x86-64 wheels of it, and GitHub is unreachable, so no Cortex-M build of TFLM can be made here).
Run: .venv/bin/python bench/firmware.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import REPO, load, parser, write_result

RAM_GOAL = 0.6


def app_models() -> list[tuple[str, Path]]:
    """int8 .tflite variants of the reference apps (apps/*/**/manifest.json); empty until they exist."""
    found = []
    for manifest in sorted((REPO / "apps").glob("**/manifest.json")):
        try:
            variants = json.loads(manifest.read_text()).get("variants", [])
        except (OSError, ValueError):
            continue
        for v in variants:
            f = manifest.parent / str(v.get("file", ""))
            if v.get("tier") == "int8" and f.suffix == ".tflite" and f.is_file():
                found.append((f"{manifest.parent.name}-int8", f))
    return found


def builtin_models(d: Path) -> list[tuple[str, Path]]:
    from firmware_export import sample_models as sm
    from sdk.models.builtin import tiny_convnet

    specs = [
        ("ds_cnn_kws", lambda p: sm.dscnn(p, classes=12, channels=64, blocks=4), [1, 1, 49, 10]),
        ("tiny_convnet", lambda p: tiny_convnet(p), [1, 3, 64, 64]),
        ("conv1d_net", sm.conv1d_net, [1, 4, 64]),
    ]
    return [(name, sm.to_int8(Path(make(d / f"{name}.onnx")), d / f"{name}.tflite", shape))
            for name, make, shape in specs]


def plan_stats(model: Path) -> dict:
    """What the arena planner did: overlaps and row-fused pairs used, and the arena of a plan by
    lifetimes alone (no overlaps, no fusion: the planner before either existed)."""
    from firmware_export import arena, lower, planner
    from firmware_export.tflite_model import load

    m = load(model)
    layers = lower.Lowerer(m, "m").lower()
    p = arena.make_plan(m, layers, "m")
    bare = [planner.Buffer(b.id, m.tensors[b.id].nbytes, b.first, b.last)
            for b in arena.make_plan(m, layers, "m", fusions=[]).buffers]
    return {"arena_lifetimes_only_bytes": planner.plan(bare, arena.ARENA_ALIGN), "overlaps": len(p.overlaps),
            "fused_pairs": [[layers[f.producer].op, layers[f.producer + 1].op, f.ring_rows] for f in p.fusions]}


def measure(name: str, model: Path, d: Path) -> dict:
    import firmware_export as fx
    from firmware_export.tflm import arena_breakdown

    res = fx.export(model, d / name, target="cortex-m4", name=name)
    host = [fx.verify_host(res.out_dir, model, n=1000, cc=cc) for cc in ("gcc", "clang")]
    qemu = fx.verify_qemu(res.out_dir)
    tflm = arena_breakdown(model.read_bytes()) or {}
    tflm_arena, tflm_head = tflm.get("total"), tflm.get("head")
    return {
        "name": name, "arena_bytes": res.arena_bytes, "flash_bytes": res.flash_bytes if res.measured else None,
        "bit_exact": all(h["max_abs_diff"] == 0 for h in host), "qemu_ok": bool(qemu["ok"]),
        "tflm_arena_bytes": tflm_arena, "tflm_flash_bytes": None,
        "ram_bytes": res.ram_bytes, "weight_bytes": res.weight_bytes, "stack_bytes": res.stack_bytes,
        "unplanned_arena_bytes": res.unplanned_arena_bytes,
        **plan_stats(model), "tflm_model_array_bytes": res.model_bytes,
        "arena_ratio_vs_tflm": round(res.arena_bytes / tflm_arena, 3) if tflm_arena else None,
        "arena_plus_io_ratio_vs_tflm": round((res.arena_bytes + res.io_bytes) / tflm_arena, 3) if tflm_arena else None,
        "tflm_arena_head_bytes": tflm_head,
        "arena_plus_io_ratio_vs_tflm_head": round((res.arena_bytes + res.io_bytes) / tflm_head, 3) if tflm_head else None,
        "flash_ratio_vs_tflm_model_array": round(res.flash_bytes / res.model_bytes, 3) if res.measured else None,
        "macs": sum(ly["macs"] for ly in res.layers), "qemu_output": qemu["output"],
        "ram_like_for_like_bytes": res.arena_bytes + res.io_bytes,
        "ram_like_for_like_ratio": round((res.arena_bytes + res.io_bytes) / tflm_head, 3) if tflm_head else None,
    }


def main() -> None:
    parser(__doc__).parse_args()
    from tqdm import tqdm

    load_before = load()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        models = app_models() + builtin_models(d)
        rows = [measure(name, path, d) for name, path in tqdm(models, desc="firmware bench")]
    ratios = {r["name"]: r["ram_like_for_like_ratio"] for r in rows}
    write_result("firmware", {
        "headline": {"ram_like_for_like_ratio": ratios, "goal_ratio": RAM_GOAL,
                     "ram_meets_goal": {k: v is not None and v <= RAM_GOAL for k, v in ratios.items()},
                     "what": "(our arena + input/output buffers) / TFLite Micro's tensor arena (head)"},
        "models": rows,
        "oracle": "LiteRT 2.x interpreter, OpResolverType.BUILTIN_REF (reference kernels), 1000 seeded inputs",
        "flash": "arm-none-eabi-size text+data of a Cortex-M4 firmware (startup + model + kernels) that runs "
                 "the model once, -Os; TFLM flash not measured (null)",
        "tflm_arena": "tflite-micro Python interpreter's RecordingMicroAllocator total on x86-64 (64-bit "
                      "pointers: its bookkeeping is somewhat larger than on a 32-bit MCU)",
        "arena": "static plan by lifetime; a layer's output may overlap an input it reads for the last time at "
                 "the offset its kernel's loop order proves safe (firmware_export/overlap.py); window-layer pairs "
                 "may run row by row through a ring buffer (firmware_export/arena.py). Our arena excludes the "
                 "caller's input/output buffers, TFLM's includes them: arena_plus_io_ratio_vs_tflm adds them; *_vs_tflm_head compares with TFLM's tensor "
                 "area alone (no persistent bookkeeping, whose size depends on the pointer width)",
        "tflm_flash": "not measured: no TFLite Micro sources or Cortex-M build of it on this machine (PyPI has "
                      "only x86-64 wheels, GitHub unreachable)",
        "app_models": "none found" if not app_models() else "included",
        "command": "python bench/firmware.py",
    }, load_before)


if __name__ == "__main__":
    main()
