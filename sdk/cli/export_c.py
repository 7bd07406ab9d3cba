"""``ember export-c MODEL.tflite --target cortex-m4 --out DIR``: int8 model to C for microcontrollers."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(sub: Any) -> None:
    from firmware_export.targets import TARGETS

    targets = ", ".join(f"{t.name} ({t.example})" for t in TARGETS.values())
    p = sub.add_parser(
        "export-c", help="export an int8 .tflite model to C for microcontrollers",
        description="Write standalone C99 inference code (no interpreter, no malloc, static arena planned "
                    "at export time, bit-exact with LiteRT's int8 reference kernels) and a TensorFlow Lite "
                    "Micro model array, as an Arduino library / Make / CMake folder with an example and a "
                    f"footprint report. Targets: {targets}.",
        epilog="Input must be full-integer int8 (make one with `ember optimize` or "
               "sdk.optimize.tflite_export.onnx_to_tflite(..., int8=True)).")
    p.add_argument("model", help="full-integer int8 .tflite file")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created; must be empty)")
    p.add_argument("--target", default="cortex-m4", choices=sorted(TARGETS), help="memory budget and CPU")
    p.add_argument("--name", default="ember_model", help="C identifier prefix (NAME_invoke, NAME.h)")
    p.add_argument("--section", default=None, metavar="SECTION",
                   help="linker section for the weights and the TFLM array, e.g. .rodata (default: none)")
    p.add_argument("--frontend", choices=["kws", "ecg"], default=None,
                   help="also write an integer front end into src/: kws (16 kHz int16 PCM -> the model's int8 "
                        "input, bit-exact with sdk.features.kws.KwsFrontend) or ecg (360 Hz ECG samples -> "
                        "QRS detection, beat windows and RR features, sample-exact with the health app)")
    p.add_argument("--kernels", choices=["portable", "cmsis-nn"], default="portable",
                   help="portable: Ember's C99 kernels, any target (SMLAD on DSP cores; 0.26-0.55x TFLite "
                        "Micro's reference-kernel instructions on MLPerf Tiny); cmsis-nn: generated calls into "
                        "Arm's CMSIS-NN for Cortex-M4/M7/M33 (0.88-1.0x TFLite Micro + CMSIS-NN) and its Helium "
                        "kernels on Cortex-M55; the project then needs CMSIS_NN_DIR")
    p.add_argument("--cmsis-nn-dir", default=None, metavar="DIR",
                   help="CMSIS-NN folder (default: $CMSIS_NN_DIR); referred to, never copied")
    p.add_argument("--io", choices=["caller", "arena"], default="caller",
                   help="caller: NAME_invoke(in, out) on your buffers; arena: input/output live in the "
                        "static arena (NAME_input(), NAME_run(), NAME_output()), reused once dead, as in "
                        "TensorFlow Lite Micro: less RAM for large inputs")
    p.add_argument("--profile", action="store_true",
                   help="count instructions per inference and per layer under qemu (-O2 Cortex-M build)")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out folder")
    p.add_argument("--verify-host", action="store_true",
                   help="compile with gcc and clang and compare 1000 seeded inputs with LiteRT")
    p.add_argument("--verify-qemu", action="store_true",
                   help="build for Cortex-M and run the compiled-in samples under qemu-system-arm")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace, config: Any) -> int:
    import firmware_export as fx

    res = fx.export(args.model, args.out, target=args.target, name=args.name, section=args.section,
                    overwrite=args.force, frontend=args.frontend, kernels=args.kernels,
                    cmsis_nn_dir=args.cmsis_nn_dir, io=args.io)
    report: dict[str, Any] = res.footprint(fx.TARGETS[args.target])
    status = 0
    if args.verify_host:
        report["host"] = [fx.verify_host(args.out, args.model, cc=cc) for cc in ("gcc", "clang")]
        status |= any(h["max_abs_diff"] for h in report["host"])
    if args.verify_qemu:
        report["qemu"] = fx.verify_qemu(args.out)
        status |= not report["qemu"]["ok"]
    if args.profile:
        from firmware_export.profile import check_output, profile

        prof = profile(args.out)
        prof["output_matches_litert"] = check_output(prof, args.model)
        prof["output"] = prof["output"].hex()
        report["profile"] = prof
        status |= not prof["output_matches_litert"]
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print(report)
    return 1 if status else 0


def _print(r: dict[str, Any]) -> None:
    how = f"measured, {r['measured_on']} build" if r["measured"] else "estimated"
    print(f"exported {r['name']} -> {r['out_dir']} for {r['target']}")
    print(f"  arena {r['arena_bytes']} B (no reuse: {r['unplanned_arena_bytes']} B), weights {r['weight_bytes']} B")
    print(f"  flash {r['flash_bytes']} / {r['target_flash_bytes']} B, RAM {r['ram_bytes']} / "
          f"{r['target_ram_bytes']} B (stack {r['stack_bytes']} B) [{how}]")
    print(f"  TFLite Micro: model array {r['model_bytes']} B, arena {r['tflm_arena_bytes']} B "
          f"({'checked with tflite-micro' if r['tflm_arena_checked'] else 'estimate'})")
    for h in r.get("host", []):
        print(f"  host {h['compiler']}: {h['inputs']} inputs, max |diff| {h['max_abs_diff']} vs {h['oracle']}")
    if "profile" in r:
        _print_profile(r["profile"])
    if "qemu" in r:
        q = r["qemu"]
        print(f"  qemu {q['machine']} ({q['cpu']}): {'OK' if q['ok'] else 'FAILED'} {q['output']}")


def _print_profile(p: dict[str, Any]) -> None:
    print(f"  instructions per inference ({p['cpu']}, {p['kernels']} kernels, {p['opt']}): {p['instructions']:,} "
          f"({p['macs_per_instruction']} MACs/instruction); output "
          f"{'matches' if p['output_matches_litert'] else 'DIFFERS from'} LiteRT")
    print(f"    {'layer':>5} {'op':<20} {'kernel':<30} {'instructions':>13} {'share':>6} {'MACs/instr':>10}")
    for ly in p["layers"]:
        share = ly["instructions"] / p["instructions"] if p["instructions"] else 0
        mpi = "" if ly["macs_per_instruction"] is None else f"{ly['macs_per_instruction']:.3f}"
        print(f"    {ly['index']:>5} {ly['op']:<20} {ly['kernel'] or '':<30} {ly['instructions']:>13,} "
              f"{share:>6.1%} {mpi:>10}")
