"""``ember models inspect DIR`` and ``ember models verify DIR``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from sdk.device import device_class


def register(sub: Any) -> None:
    p = sub.add_parser("models", help="inspect or verify a model folder (manifest.json and variants)",
                       description="Inspect or verify a model folder: its manifest, variants, files and metrics.")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    i = msub.add_parser("inspect", help="print the manifest, each variant's status and this device's metrics",
                        description="Print the manifest as JSON with each variant's usability and, per backend "
                        "available here, its inputs/outputs.")
    i.add_argument("folder", metavar="DIR", help="model folder containing manifest.json")
    i.add_argument("--device-class", help="device class whose metrics to show (default: detected)")
    i.set_defaults(func=_inspect)
    v = msub.add_parser("verify", help="check every variant file (exists, size, sha256) and load it",
                        description="Verify every variant: file present, size and sha256 as in the manifest, "
                        "and loadable by its backend. Exit status 1 if any variant is unusable, 2 if the "
                        "manifest itself is unusable or lists no variants.")
    v.add_argument("folder", metavar="DIR", help="model folder containing manifest.json")
    v.add_argument("--no-load", action="store_true", help="only check files and hashes, do not load the models")
    v.set_defaults(func=_verify)


def _inspect(args: argparse.Namespace, config: Any) -> int:
    from sdk.models.store import ModelStore

    store = ModelStore(args.folder, device_class=args.device_class or device_class())
    out = store.manifest.to_dict()
    out["device_class"] = store.device_class
    for vd, v in zip(out["variants"], store.manifest.variants, strict=True):
        vd["usable"], vd["problem"] = v.usable, v.problem
        vd["metrics_here"] = v.metrics_for(store.device_class)
    print(json.dumps(out, indent=2))
    return 0


def _verify(args: argparse.Namespace, config: Any) -> int:
    from sdk.errors import ModelError
    from sdk.models.store import ModelStore

    store = ModelStore(args.folder)
    if not store.manifest.variants:
        raise ModelError(f"{args.folder}: the manifest lists no variants, so there is nothing to serve; add one "
                         "with 'ember optimize' or Manifest.add_variant(...)")
    for v in store.manifest.variants:
        if v.usable and not args.no_load:
            try:
                store.load(v, warmup=1).close()
            except ModelError:
                pass
        status = "ok" if v.usable else f"UNUSABLE: {v.problem}"
        print(f"{v.tier:14s} {v.backend:12s} {v.file:28s} {status}")
    return 0 if all(v.usable for v in store.manifest.variants) else 1
