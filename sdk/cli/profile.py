"""``ember profile MODEL``: per-layer latency, MACs, parameters, peak memory, size, energy."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "profile", help="per-layer latency, MACs, params, peak memory, size and energy of a model",
        description="Profile a model on this device: per-layer latency (ONNX Runtime profiler), MACs and "
        "parameters per layer (from inferred shapes), peak activation memory (tensor liveness), model size, "
        "and an energy estimate (latency × the device's power figure from the power table, or RAPL when "
        "readable). .tflite files get the totals only.",
        epilog="Example: ember profile model.onnx --top 10; ember profile model.onnx --json > profile.json. "
        "Config key: optimize.power_table.")
    p.add_argument("model", help="model file (.onnx or .tflite)")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    p.add_argument("--runs", type=int, default=50, help="timed runs for the latency percentiles (default 50)")
    p.add_argument("--top", type=int, help="show only the N slowest layers")
    p.add_argument("--device-class", help="device class for the power figure (default: detected)")
    p.add_argument("--power-table", metavar="TOML", help="power table (default: the shipped power_table.toml)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_profile)


def _profile(args: argparse.Namespace, config: Any) -> int:
    from sdk.optimize.profile import format_table, profile_model

    prof = profile_model(args.model, device_class=args.device_class, threads=args.threads, runs=args.runs,
                         power_table=args.power_table or config.settings("optimize").power_table or None)
    print(json.dumps(prof.to_dict(), indent=2) if args.json else format_table(prof, args.top))
    return 0
