"""Benchmark of the speech app (keyword spotting) on the speaker-disjoint validation split.

Per tier of the shipped model: top-1 on the val split (speakers never trained on, never used for
choices), file size, latency of one 1 s window (integer front end + model, 1 thread, median), MACs.
Streaming at the shipped defaults (int8 tier): miss rate on a stream of the val keyword clips and
false accepts per hour on >= 1 h of val unknown words and silence over the val part of the noise
recordings (the 60 unknown-word clips repeat with new order, gain and background: few words, many
hours). Microcontroller: ``export-c --frontend kws`` of the int8 model, int8 outputs on the host and
on a Cortex-M4 (qemu) against Python, instructions per inference (qemu plugin from
../shared/anchors). Enrolment: the held-out word 'happy' from 5 recordings, 3 draws.

    PYTHONPATH=. .venv/bin/python bench/speech.py [--hours 1] [--quick]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import parser, write_result

from apps.speech.data import LABELS, fit, read_audio
from apps.speech.evaluate import (
    accuracy_report,
    decide,
    score_keywords,
    score_negatives,
    streams_from,
    window_posteriors,
)
from apps.speech.spotter import MODEL_DIR, KeywordSpotter, input_table, load_settings, model_input
from apps.speech.train import SHARED, splits
from sdk.features.kws import KwsFrontend

ANCHORS = Path(__file__).resolve().parents[2] / "shared" / "anchors" / "tflm-cortex-m4" / "plugin"


def tiers(clips: list, feats: np.ndarray) -> list[dict[str, Any]]:
    from sdk.models.store import ModelStore
    from sdk.optimize.graph_stats import layer_stats

    store = ModelStore(MODEL_DIR)
    m = store.manifest
    fp32 = next(v for v in m.variants if v.key == ("fp32", "onnxruntime"))
    macs = sum(s.macs for s in layer_stats(MODEL_DIR / fp32.file))
    fe = KwsFrontend()
    pcm = fit(read_audio(clips[0].path))
    table = input_table(load_settings(MODEL_DIR))
    rows = []
    for v in m.variants:
        be = store.load(v, threads=1)  # runs NCHW input on every backend
        probs = np.concatenate([be.run(model_input(f, table))[0].reshape(1, -1) for f in feats])
        rep = accuracy_report(probs, [c.label for c in clips], LABELS)
        times = []
        for _ in range(200):
            t0 = time.perf_counter()
            be.run(model_input(fe(pcm), table))
            times.append(time.perf_counter() - t0)
        be.close()
        rows.append({"tier": v.tier, "backend": v.backend, "accuracy": rep["accuracy"], "per_class": rep["per_class"],
                     "size_bytes": (MODEL_DIR / v.file).stat().st_size, "latency_ms": statistics.median(times) * 1e3,
                     "macs": macs})
    return rows


def streaming(parts: dict, noise: list, hours: float, seed: int) -> dict[str, Any]:
    kws = KeywordSpotter.from_folder(tier="int8", backend="onnxruntime")
    kw, neg = streams_from(parts["val"], kws.keywords, hours, seed, noise)
    kpost, npost = window_posteriors(kws, kw.audio), window_posteriors(kws, neg.audio)
    k = score_keywords(kw, decide(*kpost, kws.labels, kws.keywords, kws.settings))
    n = score_negatives(neg, decide(*npost, kws.labels, kws.keywords, kws.settings))
    gated = float(np.mean(npost[2] < kws.settings.gate)) if kws.settings.gate else 0.0
    curve = []
    for thr in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.99):
        s = replace(kws.settings, threshold=thr)
        curve.append({"threshold": thr,
                      "miss_rate": score_keywords(kw, decide(*kpost, kws.labels, kws.keywords, s))["miss_rate"],
                      "false_accepts_per_hour": score_negatives(neg, decide(*npost, kws.labels, kws.keywords, s))[
                          "false_accepts_per_hour"]})
    out = {"settings": vars(kws.settings).copy(), "keyword_stream": k, "negative_stream": n,
           "negative_windows_gated": gated, "threshold_curve": curve, "plot": plot_curve(curve, kws.settings)}
    kws.close()
    return out


def plot_curve(curve: list[dict[str, Any]], settings: Any) -> str:
    """Miss rate against false accepts per hour over thresholds (val streams): bench/results/speech_stream.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from _util import RESULTS

    fig, ax = plt.subplots(figsize=(6, 4))
    fa = [max(c["false_accepts_per_hour"], 0.1) for c in curve]
    ax.plot(fa, [c["miss_rate"] * 100 for c in curve], "o-")
    for c, x in zip(curve, fa):
        ax.annotate(f"{c['threshold']:g}", (x, c["miss_rate"] * 100), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    ax.axvline(1.0, color="grey", ls="--", lw=0.8)
    ax.axhline(5.0, color="grey", ls="--", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("false accepts per hour (unknown words + noise; 0 drawn at 0.1)")
    ax.set_ylabel("miss rate %")
    ax.set_title(f"speech, val speakers: threshold sweep (smooth {settings.smooth}, gate {settings.gate:g})")
    fig.tight_layout()
    path = RESULTS / "speech_stream.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path.relative_to(RESULTS.parent.parent))


def mcu(clips: list) -> dict[str, Any]:
    import firmware_export
    from firmware_export.frontend import verify
    from firmware_export.oracle import litert_outputs
    from firmware_export.tflite_model import load

    fe = KwsFrontend()
    tfl = MODEL_DIR / "model.int8.tflite"
    m = load(tfl)
    x = m.tensors[m.inputs[0]]
    size = m.tensors[m.outputs[0]].size
    pcm = np.stack([fit(read_audio(c.path))[: fe.samples_for(49)] for c in clips])
    want = litert_outputs(m.raw, np.stack([fe.to_int8(fe(c), *x.qparams()).ravel() for c in pcm]))
    with tempfile.TemporaryDirectory() as b:
        res = firmware_export.export(tfl, Path(b) / "speech", name="speech_kws", frontend="kws")
        host = verify.run_exported(res.out_dir, "speech_kws", pcm, size)
        qemu = verify.verify_model_qemu(res.out_dir, "speech_kws", pcm[:9], want[:9])
        instructions = count_instructions(res.out_dir, pcm[0], want[0], Path(b))
    agree = {}
    for name, opts in (("reference_kernels", {"reference": True}), ("default_kernels", {})):
        app = KeywordSpotter.from_folder(tier="int8", backend="litert", backend_options={"litert": opts})
        agree[name] = float(np.mean([int(np.argmax(app.probabilities(fe(c)))) == int(h.argmax())
                                     for c, h in zip(pcm, host)]))
        app.close()
    return {"bit_exact": bool(np.array_equal(host, want)) and qemu["ok"], "host_clips": len(pcm),
            "app_top1_agreement": agree,
            "host_mismatched": int((host != want).any(axis=1).sum()), "qemu": qemu, "instructions": instructions,
            "flash_bytes": res.flash_bytes, "ram_bytes": res.ram_bytes, "arena_bytes": res.arena_bytes,
            "weight_bytes": res.weight_bytes}


def count_instructions(out_dir: Path, clip: np.ndarray, expected: np.ndarray, work: Path) -> int | None:
    """Instructions of one inference (front end + int8 mapping + model) on Cortex-M4: firmware with the clip
    twice minus once, counted by the qemu TCG plugin of the TFLM anchor."""
    from firmware_export.frontend import verify

    if not (ANCHORS / "insncount.c").is_file():
        return None
    plugin = work / "libinsncount.so"
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", f"-I{ANCHORS}", "-o", str(plugin), str(ANCHORS / "insncount.c")],
                   check=True, capture_output=True)
    totals = []
    for n in (1, 2):
        build = verify.build_model_firmware(out_dir, "speech_kws", np.stack([clip] * n), np.stack([expected] * n),
                                            work / f"count{n}")
        proc = subprocess.run(["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-monitor", "none", "-serial",
                               "none", "-semihosting-config", "enable=on,target=native", "-plugin", str(plugin),
                               "-d", "plugin", "-kernel", str(build.elf)], check=False, capture_output=True, text=True,
                              timeout=300)
        line = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith("total ")]
        if proc.returncode != 0 or not line:
            return None
        totals.append(int(line[-1].split()[1]))
    return totals[1] - totals[0]


def enrolment(parts: dict, noise: list, hours: float, draws: int = 3) -> dict[str, Any]:
    import soundfile as sf

    from apps.speech.enroll import enroll

    happy, rng = parts["enroll"], np.random.default_rng(0)
    others = [c for c in parts["val"] if c.label != "silence"]
    fe = KwsFrontend()
    other_feats = [fe(fit(read_audio(c.path))) for c in others]
    rows = []
    for d in range(draws):
        order = rng.permutation(len(happy))
        ex, test = [happy[i] for i in order[:5]], [happy[i] for i in order[5:]]
        with tempfile.TemporaryDirectory() as b:
            for c in ex:
                sf.write(Path(b) / f"{c.path.stem}.wav", read_audio(c.path), 16000)
            enroll("happy", Path(b), Path(b) / "model")
            kws = KeywordSpotter.from_folder(Path(b) / "model", tier="int8", backend="onnxruntime")
            hit = np.mean([kws.probabilities(fe(fit(read_audio(c.path))))[0] >= 0.5 for c in test])
            false = np.mean([kws.probabilities(f)[0] >= 0.5 for f in other_feats])
            _, neg = streams_from(parts["val"], [], hours, seed=10 + d, noise=noise)
            found = decide(*window_posteriors(kws, neg.audio), kws.labels, kws.keywords, kws.settings)
            kws.close()
        rows.append({"recall": float(hit), "false_positive_rate": float(false),
                     "false_accepts_per_hour": len(found) / neg.hours, "test_clips": len(test),
                     "negative_clips": len(others), "negative_hours": neg.hours})
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("recall", "false_positive_rate", "false_accepts_per_hour")}
    return {"word": "happy", "examples": 5, "draws": rows, **mean,
            "accuracy": (mean["recall"] + 1 - mean["false_positive_rate"]) / 2,
            "accuracy_note": "balanced: mean of recall on held-out 'happy' clips and rejection of val clips of other words"}


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--hours", type=float, default=1.0, help="negative stream length (default 1)")
    p.add_argument("--quick", action="store_true", help="0.1 h streams, one enrolment draw (a smoke run)")
    args = p.parse_args()
    hours = 0.1 if args.quick else args.hours
    from apps.speech.augment import Noise

    parts = splits(SHARED)
    noise = Noise.load(SHARED / "speech_commands_extra" / "_background_noise_").parts["val"]
    fe = KwsFrontend()
    feats = [fe(fit(read_audio(c.path))) for c in parts["val"]]
    rows = tiers(parts["val"], feats)
    stream = streaming(parts, noise, hours, seed=0)
    result = {
        "split": {"val_clips": len(parts["val"]), "val_speakers": len({c.speaker for c in parts["val"]}),
                  "train_clips": len(parts["train"]), "select_clips": len(parts["select"])},
        "tiers": rows,
        "int8_size_bytes": next(r["size_bytes"] for r in rows if r["tier"] == "int8" and r["backend"] == "litert"),
        "false_accepts_per_hour": stream["negative_stream"]["false_accepts_per_hour"],
        "miss_rate": stream["keyword_stream"]["miss_rate"],
        "stream": stream,
        "mcu": mcu(parts["val"][::max(1, len(parts["val"]) // 100)]),
        "enroll": enrolment(parts, noise, hours, draws=1 if args.quick else 3),
        "targets": {"int8_accuracy": 0.92, "int8_size_bytes": 30 * 1024, "false_accepts_per_hour": 1.0,
                    "miss_rate": 0.05},
    }
    write_result("speech", result)


if __name__ == "__main__":
    main()
