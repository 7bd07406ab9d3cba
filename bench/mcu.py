"""Ember's exported C against TensorFlow Lite Micro on the four MLPerf Tiny models, Cortex-M4F.

For each model, two exports: ``--kernels cmsis-nn`` (compared with TFLM + CMSIS-NN, int8 registrations)
and ``--kernels portable`` (compared with TFLM's reference kernels). Measured the same way as TFLM's
figures in ../shared/anchors/tflm-cortex-m4/: instructions of one inference on the same LCG input counted
by a qemu TCG plugin (mps2-an386), -O2 builds; flash = text + data of that firmware; RAM = data + bss
(arena, input/output buffers, statics; no stack, as TFLM's figure). Exports use ``io="arena"``: input
and output live in the arena, as TFLM's tensors do (``NAME_input()``/``NAME_run()``/``NAME_output()``). Bit-exactness: 1000 seeded inputs
through the host build (gcc and clang) against LiteRT's reference kernels (BUILTIN_REF), and the counted
qemu inference's output against LiteRT on the same input.
The ``m55`` section: the same exports for ``--target cortex-m55`` (Helium: CMSIS-NN's MVE kernels),
counted on qemu mps3-an547; no TFLM anchor exists for it, so it is reported beside the M4 figures, not
against TFLM. Bit-exact there: the counted input and the 8 seeded inputs of the verification firmware
(host builds would run CMSIS-NN's C path, not its MVE kernels).
Needs CMSIS-NN: CMSIS_NN_DIR, else ../shared/third_party/CMSIS-NN.
Run: .venv/bin/python bench/mcu.py [--inputs 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import REPO, load, write_result

SHARED = REPO.parent / "shared"
MODELS = {"kws": "kws_ref_model.tflite", "vww": "vww_96_int8.tflite", "ad": "ad01_int8.tflite",
          "ic": "pretrainedResnet_quant.tflite"}
ANCHORS = SHARED / "anchors" / "tflm-cortex-m4"
GOALS = {"instructions": 1.0, "ram": 0.6, "flash": 0.95, "code": 0.5, "portable_instructions": 0.7}


def tflm(model: str, variant: str) -> dict:
    return json.loads((ANCHORS / model / f"{variant}.json").read_text())


def run(name: str, path: Path, kernels: str, d: Path, n: int) -> dict:
    import firmware_export as fx
    from firmware_export.profile import check_output, profile

    res = fx.export(path, d / f"{name}_{kernels}", name=name, kernels=kernels, measure=False, io="arena")
    prof = profile(res.out_dir)
    host = [fx.verify_host(res.out_dir, path, n=n, cc=cc) for cc in ("gcc", "clang")]
    return {"res": res, "prof": prof, "host": host, "qemu_exact": check_output(prof, path)}


def row(name: str, path: Path, d: Path, n: int) -> dict:
    fast, port = run(name, path, "cmsis-nn", d, n), run(name, path, "portable", d, n)
    cm, ref = tflm(name, "cmsis_nn_int8"), tflm(name, "ref")
    p, res = fast["prof"], fast["res"]
    ins, tins = p["instructions"], cm["insn_per_inference"][0]
    code, tcode = p["flash_bytes"] - res.weight_bytes, cm["flash_total"] - cm["model_array"]
    pins, rins = port["prof"]["instructions"], ref["insn_per_inference"][0]
    return {
        "name": name, "instructions": ins, "tflm_cmsis_instructions": tins, "instructions_ratio": round(ins / tins, 3),
        "flash_bytes": p["flash_bytes"], "tflm_flash_bytes": cm["flash_total"],
        "flash_ratio": round(p["flash_bytes"] / cm["flash_total"], 3),
        "weight_bytes": res.weight_bytes, "tflm_model_array_bytes": cm["model_array"],
        "code_bytes": code, "tflm_code_bytes": tcode, "code_ratio": round(code / tcode, 3),
        "ram_bytes": p["ram_static_bytes"], "tflm_ram_bytes": cm["ram_static_total"],
        "ram_ratio": round(p["ram_static_bytes"] / cm["ram_static_total"], 3),
        "arena_bytes": res.arena_bytes, "io_bytes": res.io_bytes, "stack_estimate_bytes": p["stack_estimate_bytes"],
        "tflm_stack_bytes": cm["stack_used"],
        "bit_exact": all(h["max_abs_diff"] == 0 for h in fast["host"]) and fast["qemu_exact"],
        "bit_exact_host": {h["compiler"]: h["mismatched_inputs"] == 0 for h in fast["host"]},
        "bit_exact_qemu_counted_input": fast["qemu_exact"],
        "cmsis_layers": sum(ly["kernel"].startswith("arm_") for ly in p["layers"]),
        "layers": p["layers"], "macs": p["macs"], "macs_per_instruction": p["macs_per_instruction"],
        "portable": {
            "instructions": pins, "tflm_ref_instructions": rins, "instructions_ratio": round(pins / rins, 3),
            "flash_bytes": port["prof"]["flash_bytes"], "tflm_ref_flash_bytes": ref["flash_total"],
            "ram_bytes": port["prof"]["ram_static_bytes"], "tflm_ref_ram_bytes": ref["ram_static_total"],
            "arena_bytes": port["res"].arena_bytes,
            "bit_exact": all(h["max_abs_diff"] == 0 for h in port["host"]) and port["qemu_exact"]},
    }


def m55(name: str, path: Path, d: Path, m4: dict) -> dict:
    """Cortex-M55 (Helium) exports of one model, counted on mps3-an547, beside the M4 figures."""
    import firmware_export as fx
    from firmware_export.profile import check_output, profile

    out = {"name": name}
    for kernels, m4_ins in (("cmsis-nn", m4["instructions"]), ("portable", m4["portable"]["instructions"])):
        res = fx.export(path, d / f"m55_{name}_{kernels}", name=name, target="cortex-m55", kernels=kernels,
                        measure=False, io="arena")
        p, ver = profile(res.out_dir), fx.verify_qemu(res.out_dir)
        out[kernels] = {"instructions": p["instructions"], "m4_instructions": m4_ins,
                        "vs_m4": round(p["instructions"] / m4_ins, 3), "flash_bytes": p["flash_bytes"],
                        "ram_bytes": p["ram_static_bytes"], "arena_bytes": res.arena_bytes,
                        "bit_exact": check_output(p, path) and ver["ok"], "verify": ver["output"]}
    return out


def main() -> None:
    from tqdm import tqdm

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=int, default=1000, help="seeded inputs per model for the host check")
    args = ap.parse_args()
    os.environ.setdefault("CMSIS_NN_DIR", str(SHARED / "third_party" / "CMSIS-NN"))
    load_before = load()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [row(name, SHARED / "models" / "mlperf_tiny" / f, Path(tmp), args.inputs)
                for name, f in tqdm(MODELS.items(), desc="mlperf tiny")]
        m55_rows = [m55(r["name"], SHARED / "models" / "mlperf_tiny" / MODELS[r["name"]], Path(tmp), r)
                    for r in tqdm(rows, desc="cortex-m55")]
    meets = {r["name"]: {"instructions": r["instructions_ratio"] <= GOALS["instructions"],
                         "ram": r["ram_ratio"] <= GOALS["ram"], "flash": r["flash_ratio"] <= GOALS["flash"],
                         "code": r["code_ratio"] <= GOALS["code"], "bit_exact": r["bit_exact"],
                         "portable_instructions": r["portable"]["instructions_ratio"] <= GOALS["portable_instructions"]}
             for r in rows}
    write_result("mcu", {
        "models": rows, "goals": GOALS, "meets_goals": meets,
        "headline": {r["name"]: {"instructions_ratio": r["instructions_ratio"], "ram_ratio": r["ram_ratio"],
                                 "flash_ratio": r["flash_ratio"], "code_ratio": r["code_ratio"],
                                 "portable_vs_tflm_ref": r["portable"]["instructions_ratio"]} for r in rows},
        "tflm": "../shared/anchors/tflm-cortex-m4 (TFLM 90b983c2, arm-none-eabi-gcc 12.2, cmsis_nn_int8 and ref "
                "variants; exact instruction counts from the same kind of qemu plugin)",
        "measure": "qemu-system-arm -M mps2-an386, instructions between marks around one NAME_invoke on TFLM's LCG "
                   "input; Ember -O2 (CMSIS-NN -O2); flash text+data, RAM data+bss of the counted firmware",
        "oracle": f"LiteRT OpResolverType.BUILTIN_REF, {args.inputs} seeded inputs, host gcc and clang builds",
        "io": "arena (input/output inside the static arena, like TFLM's tensors; --io arena)",
        "m55": {"models": m55_rows, "measure": "qemu-system-arm -M mps3-an547 (Cortex-M55, MVE), same counting "
                "plugin and marks; Ember -O2, CMSIS-NN -O2 with -mcpu=cortex-m55 (ARM_MATH_MVEI); vs_m4: "
                "instructions / the M4 build's above (instructions, not cycles: an MVE instruction is 2-4 beats)"},
        "command": "python bench/mcu.py" + (f" --inputs {args.inputs}" if args.inputs != 1000 else ""),
    }, load_before)


if __name__ == "__main__":
    main()
