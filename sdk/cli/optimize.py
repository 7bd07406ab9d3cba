"""``ember optimize MODEL.onnx --calib DATA --eval DATA --out DIR`` and ``--measure-only DIR``."""

from __future__ import annotations

import argparse
from typing import Any

from sdk.errors import ConfigError
from sdk.optimize.quantize import CALIBRATION_METHODS
from sdk.optimize.tiers import ALL_TIERS
from sdk.util.jsonutil import dumps

DATA_HELP = ".npz with array x (and y labels) or a folder of .npy files (x.npy [+ y.npy], or one sample per file)"


def register(sub: Any) -> None:
    p = sub.add_parser(
        "optimize", help="make fp16/int8/mixed/LiteRT tiers of a model, measure them, write a report",
        description="Build every precision tier of an fp32 ONNX model of any opset >= 7 (upgraded and "
        "pre-processed for the quantizer; dynamic dimensions fixed from the data or --input-shape): fp16, int8 "
        "static QDQ, int8 dynamic where the op census fits, int8 mixed precision (float layers chosen by measured sensitivity: per layer, or per block of 8 "
        "layers then per layer for big models; LiteRT re-checks its own choice), LiteRT fp32, full-int8 and int8-mixed; verify the .tflite files against ONNX, measure accuracy, latency (1 thread), peak memory, size and "
        "energy on this device, and write a model folder with manifest.json, report.md/.html and pareto.png. "
        "A tier that fails is recorded in the report; the others go on.",
        epilog="Example: ember optimize model.onnx --calib calib.npz --eval val.npz --out models/mine. "
        "Re-measure on another device: ember optimize --measure-only models/mine --eval val.npz. "
        "Config keys: optimize.method, optimize.max_drop, optimize.power_table.")
    p.add_argument("model", nargs="?", help="fp32 ONNX model (not needed with --measure-only)")
    p.add_argument("--calib", metavar="DATA", help="calibration inputs: " + DATA_HELP)
    p.add_argument("--eval", metavar="DATA", help="evaluation inputs and labels: " + DATA_HELP
                   + "; with --task detection a COCO-style folder (annotations.json + images/)")
    p.add_argument("--task", default="classification", choices=["classification", "regression", "detection"],
                   help="how outputs are scored: top-1 accuracy %%, 100·R² (without labels: against the fp32 "
                   "outputs) or mAP@0.5 (--eval is a COCO-style folder, --calib may be a folder of images) "
                   "(default classification)")
    p.add_argument("--decoder", default="yolox", help="detection decoder for --task detection (default yolox)")
    p.add_argument("--out", metavar="DIR", help="model folder to write")
    p.add_argument("--input-shape", metavar="NAME=1x3x320x320",
                   help="static input shape for a model with dynamic dimensions (default: taken from the "
                   "data; the tiers are built at this shape and the manifest records it)")
    p.add_argument("--name", help="model name in the manifest (default: the file's stem)")
    p.add_argument("--labels", help="comma-separated class labels for the manifest")
    p.add_argument("--tiers", default=",".join(ALL_TIERS),
                   help=f"comma-separated tier/backend keys (default all: {','.join(ALL_TIERS)})")
    p.add_argument("--method", choices=CALIBRATION_METHODS, help="int8 calibration (default minmax)")
    p.add_argument("--max-drop", type=float, help="accuracy budget in points for mixed precision (default 1.0)")
    p.add_argument("--calib-limit", type=int, default=256, help="at most N calibration samples (default 256)")
    p.add_argument("--eval-limit", type=int, default=1000, help="at most N evaluation samples (default 1000)")
    p.add_argument("--device-class", help="name of this device's class in the manifest (default: detected)")
    p.add_argument("--power-table", metavar="TOML", help="device power table for energy estimates")
    p.add_argument("--measure-only", metavar="DIR",
                   help="measure the variants of an existing model folder on this device; no rebuild")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=_optimize)


def _optimize(args: argparse.Namespace, config: Any) -> int:
    from sdk.optimize.report import COLUMNS, rows
    from sdk.optimize.toolchain import measure_folder, optimize

    settings = config.settings("optimize")
    power = args.power_table or settings.power_table or None
    if args.measure_only:
        res = measure_folder(args.measure_only, args.eval, device=args.device_class, power_table=power)
    else:
        missing = [f for f, v in (("MODEL", args.model), ("--calib", args.calib), ("--eval", args.eval),
                                  ("--out", args.out)) if not v]
        if missing:
            raise ConfigError(f"ember optimize needs {', '.join(missing)} (or --measure-only DIR)")
        res = optimize(args.model, args.calib, args.eval, args.out, task=args.task, name=args.name,
                       labels=[s.strip() for s in args.labels.split(",")] if args.labels else (),
                       tiers=[t.strip() for t in args.tiers.split(",") if t.strip()],
                       method=args.method or settings.method,
                       max_drop=float(args.max_drop if args.max_drop is not None else settings.max_drop),
                       calib_limit=args.calib_limit, eval_limit=args.eval_limit, device=args.device_class,
                       power_table=power, input_shape=args.input_shape,
                       decoder=args.decoder)
    if args.json:
        print(dumps(res.to_dict(), indent=2))
        return 0
    table = [list(COLUMNS)] + rows(res)
    widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS) - 1)]
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
    print(f"\nmodel folder: {res.folder}  (report.md, report.html, pareto.png, manifest.json)")
    return 0
