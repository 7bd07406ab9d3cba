"""Health app benchmark: QRS detection on every record, beat classes in patient-wise cross-validation
per tier, real-time factor per tier, and the C pipeline on the host and on a Cortex-M4 under qemu.

    PYTHONPATH=. python bench/health.py [--data ../shared/data/mitbih] [--work /work/train/health3]

``--work`` is a ``python -m apps.health.train --cv`` folder: its fold models (``cv<k>.onnx``, each
trained without the patients of fold k), ``cv.json`` (the folds) and ``beats.npz`` (beat cache).
Each fold model is turned into the same tiers as the shipped model and scored on its held-out
patients only; the per-tier scores pool every fold's held-out beats.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from _util import REPO, parser, write_result  # write_result records the git commit and a dirty flag

from apps.health.classifier import MODEL_DIR, BeatClassifier
from apps.health.dataset import MODEL_CLASSES
from apps.health.features import model_input
from apps.health.frontend import detect, to_units
from apps.health.metrics import class_metrics, qrs_metrics
from apps.health.records import find_records, match, outside, read_record

TIERS = (("fp32", "onnxruntime"), ("int8", "onnxruntime"), ("fp32", "litert"), ("int8", "litert"))


def qrs(records: list[Any]) -> dict[str, Any]:
    tot = {"tp": 0, "fn": 0, "fp": 0}
    per = {}
    for rec in records:
        det = detect(to_units(rec.signal))
        det = det[outside(det, rec.excluded)]
        ref = rec.beats[outside(rec.beats, rec.excluded)]
        i, _ = match(ref, det)
        m = qrs_metrics(len(i), len(ref) - len(i), len(det) - len(i))
        per[rec.name] = {"se": m["se"], "ppv": m["ppv"]}
        for k in tot:
            tot[k] += m[k]
    return {**qrs_metrics(**tot), "per_record": per}


def noise_stress(folder: Path) -> dict[str, Any]:
    """QRS Se/+P and the share of usable seconds on the noise-stress copies of record 118."""
    from apps.health.quality import judge

    out = {}
    for path in sorted(p for p in find_records(folder) if p.name.startswith("118e")):
        rec = read_record(path)
        det = detect(to_units(rec.signal))
        i, _ = match(rec.beats, det)
        states = [judge(rec.signal[s:s + 720])[0] for s in range(0, len(rec.signal) - 720, 360)]
        out[rec.name] = {"se": len(i) / len(rec.beats), "ppv": len(i) / max(len(det), 1),
                         "usable_share": float(np.mean([st in ("good", "wander") for st in states]))}
    return out


def cv_tiers(work: Path) -> list[dict[str, Any]]:
    from apps.health.train import make_tiers

    folds = json.loads((work / "cv.json").read_text())["folds"]
    with np.load(work / "beats.npz") as z:
        d = {k: z[k] for k in z.files}
    x = model_input(d["window"], d["template"], d["rr"])
    clean = d["copy"] == 0
    pred = {t: np.full(len(d["y"]), -1) for t in TIERS}
    for f, held in enumerate(folds):
        test = np.isin(d["record"], held)
        folder = work / f"tiers{f}"
        if not (folder / "manifest.json").is_file():
            train = clean & ~test
            make_tiers(work / f"cv{f}.onnx", x[train], d["y"][train], folder, seed=f)
        for t in TIERS:
            clf = BeatClassifier(folder, *t)
            pred[t][test] = clf.probabilities(x[test]).argmax(1)
            clf.close()
    out = []
    shipped = json.loads((MODEL_DIR / "manifest.json").read_text())["variants"]
    for t in TIERS:
        size = next((v["size_bytes"] for v in shipped if (v["tier"], v["backend"]) == t), None)
        row: dict[str, Any] = {"tier": t[0], "backend": t[1], "size_bytes": size}
        for name, mask in (("clean", clean), ("noisy_12db", d["copy"] == 1), ("noisy_6db", d["copy"] == 2)):
            m = class_metrics(d["y"][mask], pred[t][mask], MODEL_CLASSES)
            if name == "clean":
                row.update({c: {"se": m[c]["se"], "ppv": m[c]["ppv"]} for c in MODEL_CLASSES})
                row["accuracy"] = m["accuracy"]
                row["confusion"] = m["confusion"]["matrix"]
            else:
                row[name] = {c: {"se": m[c]["se"], "ppv": m[c]["ppv"]} for c in ("S", "V")}
        out.append(row)
    return out


def seed_row(work: Path) -> dict[str, Any]:
    """The torch fp32 CV result of one ``--cv`` run (its own seed and folds)."""
    cv = json.loads((work / "cv.json").read_text())
    m = cv["copy0"]
    return {"run": work.name, "folds": cv["folds"], "accuracy": m["accuracy"],
            **{c: {"se": m[c]["se"], "ppv": m[c]["ppv"]} for c in MODEL_CLASSES}}


def realtime(records: list[Any], seconds: int = 600) -> list[dict[str, Any]]:
    from apps.health.monitor import HealthMonitor

    out = []
    for t in TIERS:
        clf = BeatClassifier(None, *t)
        ecg = cpu = 0.0
        for rec in records:
            mon = HealthMonitor(classifier=clf)
            sig = rec.signal[:seconds * 360]
            t0 = time.process_time()
            for s in range(0, len(sig), 360):
                mon.process(sig[s:s + 360])
            mon.finish()
            cpu += time.process_time() - t0
            ecg += len(sig) / 360
        clf.close()
        out.append({"tier": t[0], "backend": t[1], "realtime_factor": round(ecg / cpu, 1)})
    return out


def mcu(records: list[Any], excerpt_s: int = 20) -> dict[str, Any]:
    import tempfile

    from firmware_export import export
    from firmware_export.frontend import ecg
    from firmware_export.tflite_model import load

    streams = {r.name: to_units(r.signal).astype(np.int16) for r in records}
    host = ecg.verify_host(streams)
    tfl = MODEL_DIR / "model.int8.tflite"
    scale, zp = ecg.input_quant(load(tfl.read_bytes()))
    clf = BeatClassifier(None, "int8", "litert")
    agree, n, beats_match = 0, 0, True
    with tempfile.TemporaryDirectory() as b:
        export(tfl, Path(b) / "exp", name="health_beats", frontend="ecg", measure=False)
        for name in list(streams)[:3]:
            r, out = ecg.run_exported(Path(b) / "exp", "health_beats", streams[name], scale, zp)
            py = ecg.python_beats(streams[name])
            x = model_input(py["window"], py["template"], py["rr"])
            beats_match &= bool(np.array_equal(r, py["r"]))
            agree += int((clf.probabilities(x).argmax(1) == out.argmax(1)).sum())
            n += len(r)
    clf.close()
    first = next(iter(streams.values()))[:excerpt_s * 360]
    q = ecg.verify_qemu(first)
    ipb = ecg.instructions_per_beat(first)
    return {"beats_match": bool(host["beats_match"] and beats_match and q["ok"]),
            "features_match": host["features_match"], "classes_match": agree == n, "class_agreement": agree / max(n, 1),
            "records_host": len(streams), "records_classes": min(3, len(streams)), "qemu": q,
            "instructions_per_beat": ipb["instructions_per_beat"], "instructions_per_sample": ipb["instructions_per_sample"],
            "instructions_note": f"whole firmware run over {excerpt_s} s of {next(iter(streams))} "
                                 "(start-up and the in-firmware comparison included), front end only"}


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "mitbih")
    ap.add_argument("--work", type=Path, default=Path("/work/train/health3"))
    ap.add_argument("--spread", type=Path, nargs="*", default=[Path("/work/train/health3_s1")],
                    help="more --cv runs of the same recipe with other seeds (other folds): fp32 spread")
    ap.add_argument("--skip-mcu", action="store_true")
    args = ap.parse_args()
    records = [read_record(p) for p in find_records(args.data)]
    result: dict[str, Any] = {"bench": "health", "records": len(records)}
    result["qrs"] = qrs(records)
    noise_dir = args.data.parent / "mitbih_noise"
    result["qrs_noise_stress"] = noise_stress(noise_dir) if noise_dir.is_dir() else None
    result["tiers"] = cv_tiers(args.work)
    result["cv_folds"] = json.loads((args.work / "cv.json").read_text())["folds"]
    result["cv_seeds"] = [seed_row(d) for d in [args.work, *args.spread] if (d / "cv.json").is_file()]
    rt = realtime(records[:3])
    result["realtime"] = rt
    result["realtime_factor"] = min(r["realtime_factor"] for r in rt)
    result["mcu"] = None if args.skip_mcu else mcu(records)
    result["notes"] = ("QRS: 150 ms window, VF episodes excluded, detector thresholds tuned on these DS1 records. "
                       "Classes: patient-wise 5-fold CV on DS1 (each fold model never saw its test patients); "
                       "the recipe (--arch rr --dropout 0.5, the usual-beat template, --morph 0.5) was chosen per fold on "
                       "inner-validation patients (the next fold, never the fold's test patients), DS2 is the independent test. "
                       "realtime_factor: the slowest tier, seconds of ECG per CPU second, whole pipeline.")
    write_result("health", result)


if __name__ == "__main__":
    main()
