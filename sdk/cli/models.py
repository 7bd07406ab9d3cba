"""``ember models inspect DIR``, ``verify DIR``, ``import MODEL``, ``keygen --out DIR``, ``pack DIR --key K`` and
``verify-bundle BUNDLE --trusted PUB``."""

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
    _register_import(msub)
    _register_signing(msub)


def _register_signing(msub: Any) -> None:
    k = msub.add_parser("keygen", help="make an Ed25519 key pair for signing model bundles",
                        description="Write DIR/signing.key (private, mode 0600: keep it on the release machine) "
                        "and DIR/signing.pub (install it on devices as a trusted key). Keys are never sent over "
                        "MQTT; existing files are never overwritten.")
    k.add_argument("--out", metavar="DIR", required=True, help="folder for signing.key and signing.pub")
    k.set_defaults(func=_keygen)
    p = msub.add_parser("pack", help="make a signed bundle of a model folder for rollout",
                        description="Pack DIR (manifest.json and every file beside it) into one signed bundle "
                        "(a gzip'd tar behind an Ed25519-signed header with the version, name, size and sha256). "
                        "Devices verify it with their trusted public keys and refuse unsigned, tampered, "
                        "older or oversized bundles. See sdk/rollout/README.md.")
    p.add_argument("folder", metavar="DIR", help="model folder containing manifest.json")
    p.add_argument("--key", metavar="FILE", required=True, help="private key from 'ember models keygen'")
    p.add_argument("--version", metavar="V", help="version to stamp, 1 to 4 dotted integers like 1.2.3 "
                   "(default: the manifest's \"version\"); devices install only newer versions")
    p.add_argument("--out", metavar="FILE", help="bundle to write (default: NAME-VERSION.bundle beside DIR)")
    p.set_defaults(func=_pack)
    c = msub.add_parser("verify-bundle", help="check a bundle as a device would (signature, version, contents)",
                        description="Run every check a device runs before installing BUNDLE: signature by one of "
                        "the trusted public keys, payload hash, version newer than --active, size limits, and each "
                        "member (no links, devices, absolute or '..' paths, duplicates; a valid manifest). Prints "
                        "the bundle's name and version, or the reason it is refused (exit status 1).")
    c.add_argument("bundle", metavar="BUNDLE", help="bundle file from 'ember models pack'")
    c.add_argument("--trusted", metavar="PUB", action="append", required=True,
                   help="trusted public key (.pub from 'ember models keygen'); repeat for several")
    c.add_argument("--active", metavar="V", help="the device's active version (the bundle must be newer)")
    c.set_defaults(func=_verify_bundle)


def _keygen(args: argparse.Namespace, config: Any) -> int:
    from pathlib import Path

    from sdk.rollout.keys import keygen

    out = Path(args.out)
    kid = keygen(out / "signing.key", out / "signing.pub")
    print(f"{out / 'signing.key'} (private: keep it secret) and {out / 'signing.pub'} (key id {kid}; "
          "give it to devices as a trusted key)")
    return 0


def _verify_bundle(args: argparse.Namespace, config: Any) -> int:
    from sdk.errors import RolloutRejected
    from sdk.rollout.bundle import verify

    try:
        info = verify(args.bundle, args.trusted, active_version=args.active, emit=lambda *a, **k: None)
    except RolloutRejected as e:
        print(f"{args.bundle}: REFUSED {e}")
        return 1
    print(f"{args.bundle}: ok, {info.name} {info.version}, {info.files} files, {info.unpacked_bytes} bytes "
          f"unpacked, signed by key {info.key_id}")
    return 0


def _pack(args: argparse.Namespace, config: Any) -> int:
    from sdk.rollout.bundle import pack, verify
    from sdk.rollout.keys import load_private_key

    path = pack(args.folder, args.key, args.out, version=args.version)
    info = verify(path, [load_private_key(args.key)], emit=lambda *a, **k: None)
    print(f"{path}: {info.name} {info.version}, {info.files} files, {path.stat().st_size} bytes, "
          f"key {info.key_id}, payload sha256 {info.payload_sha256}")
    return 0


def _register_import(msub: Any) -> None:
    from sdk.detect.decoders import DECODERS

    p = msub.add_parser("import", help="make a model folder from your own detector (ONNX or TFLite)",
                        description="Bring your own detection model: write DIR/manifest.json and "
                        "DIR/model.fp32.onnx|tflite with the decoder, input preprocessing (letterbox, colour "
                        "order, normalisation as the model family's exporter expects) and labels. Then make "
                        "tiers with 'ember optimize', run it with 'ember run vision --model DIR' or evaluate "
                        "it with 'ember eval vision --model DIR'.")
    p.add_argument("model", metavar="MODEL", help="an .onnx or .tflite detection model")
    p.add_argument("--decoder", default="auto", choices=["auto", *DECODERS],
                   help="output layout: yolox (raw grid [1,N,5+C]), yolov5 ([1,N,5+C] in pixels), yolov8 "
                   "([1,4+C,N]), ssd (TFLite_Detection_PostProcess), centernet; auto guesses from the outputs")
    p.add_argument("--labels", metavar="FILE", required=True, help="class names, one per line (e.g. coco.txt)")
    p.add_argument("--classes", metavar="IDS", help="keep only these class ids, e.g. 0,1,2,3,5,7 "
                   "(people and vehicles of COCO); their labels become the model's")
    p.add_argument("--input-size", type=int, metavar="N", help="square input size for a model with dynamic sizes")
    p.add_argument("--threshold", type=float, default=0.3, help="score threshold (default 0.3)")
    p.add_argument("--iou", type=float, default=0.5, help="NMS IoU threshold (default 0.5)")
    p.add_argument("--name", help="model name in the manifest (default: the file name)")
    p.add_argument("--out", metavar="DIR", help="model folder to write (default: the file name without suffix)")
    p.set_defaults(func=_import)


def _import(args: argparse.Namespace, config: Any) -> int:
    from pathlib import Path

    from sdk.detect.importer import import_model
    from sdk.errors import ConfigError

    try:
        classes = [int(c) for c in args.classes.split(",")] if args.classes else []
    except ValueError:
        raise ConfigError(f"--classes {args.classes!r}: expected comma-separated class ids") from None
    out = args.out or Path(args.model).with_suffix("").name
    folder = import_model(args.model, out, args.decoder, args.labels, classes, args.input_size, args.threshold,
                          args.iou, args.name)
    m = json.loads((folder / "manifest.json").read_text())
    print(f"{folder}: {m['name']} ({m['output']['decoder']} decoder, input {m['input']['shape']} "
          f"{m['input']['color']}, {len(m['labels'])} labels); next: ember optimize or ember run vision --model {folder}")
    return 0


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
