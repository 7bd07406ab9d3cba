"""Train the keyword spotter from scratch: ``python -m apps.speech.train`` (needs the ``train`` extra).

Stages (each resumable; caches and checkpoints live in ``--work``, default /work/train/speech):
1. features of every clip and of ``--copies`` augmented copies, from the integer front end (.npy cache);
2. a DS-CNN or BC-ResNet (``--arch``, ``--width``, ``--depth``; apps/speech/nets.py) trained with
   class-balanced sampling and SpecAugment (checkpoint every epoch, ``--epochs``), optionally with
   synthetic unknown words and keywords (``--synth``, ``--synth-keywords``, ``--synth-share``) and
   distillation from an ONNX teacher (``--teacher``; batches.py);
3. ONNX export and the tiers (fp32, int8; ONNX Runtime and LiteRT) via ``sdk.optimize.optimize``
   into ``--out`` (default apps/speech/model), then streaming thresholds tuned on the select split.

Splits are by speaker (``apps.speech.data.split_of``): train, select (model/threshold choices) and
val (reported only). The enrolment word (``happy``) is never used for training.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from apps.speech.batches import distil, roll_time, sampling_weights, spec_augment, teacher_logits, to_input
from apps.speech.data import LABELS, Clip, list_clips, split_of
from apps.speech.spotter import SETTINGS_FILE
from apps.speech.stream import StreamSettings

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
ENROLL_WORD = "happy"
IN_MEAN, IN_STD = 21.0, 7.0  # log2 energy of the training features, roughly; folded into conv 1 for export
ARCHS = {"dscnn": (64, 4), "bcresnet": (8, 1)}  # network families (apps/speech/nets.py): default width, depth


def splits(data: Path) -> dict[str, list[Clip]]:
    """train / select / val / enroll clip lists from speech_commands (+ speech_commands_extra for training)."""
    main = data / "speech_commands"
    if not main.is_dir():
        raise SystemExit(f"training data not found: {main} (set --data to the folder holding speech_commands/)")
    out: dict[str, list[Clip]] = {"train": [], "select": [], "val": [], "enroll": []}
    held: set[str] = set()
    for c in list_clips(main):
        if c.word == ENROLL_WORD:
            out["enroll"].append(c)
            continue
        part = split_of(c.speaker)
        out[part].append(c)
        if part != "train":
            held.add(c.speaker)
    extra = data / "speech_commands_extra"
    for c in list_clips(extra) if extra.is_dir() else []:
        if c.word == ENROLL_WORD:
            out["enroll"].append(c)
        elif c.speaker not in held:
            out["train"].append(c)
    return out


def build_cache(work: Path, data: Path, copies: int, seed: int, extra_silence: int,
                synth: int = 0, synth_keywords: int = 0) -> dict[str, Path]:
    from apps.speech.augment import Noise, features_of

    work.mkdir(parents=True, exist_ok=True)
    parts = splits(data)
    noise_dir = data / "speech_commands_extra" / "_background_noise_"
    noise = Noise.load(noise_dir) if noise_dir.is_dir() else None
    paths = {}
    for i, (name, n_copies, sil) in enumerate([("train", copies, extra_silence), ("select", 1, 0), ("val", 1, 0)]):
        px, py = work / f"{name}_x.npy", work / f"{name}_y.npy"
        if not (px.exists() and py.exists()):
            x, y = features_of(parts[name], n_copies, noise, seed + i, sil if noise else 0, desc=name)
            np.save(py, y)
            np.save(px, x)  # written last: its presence marks a complete stage
        paths[name] = px
    from apps.speech import synth as synthetic

    # synthetic words: training only, cached apart so the clip cache stays reusable
    for name, n, make, salt in (("synth", synth, synthetic.make_unknowns, 7),
                                ("synth_kw", synth_keywords, synthetic.make_keywords, 11)):
        px, py = work / f"{name}_x.npy", work / f"{name}_y.npy"
        if n and not (px.exists() and py.exists()):
            clips = make(work / name, n, seed + salt)
            x, y = features_of(clips, copies, noise, seed + salt - 4, 0, desc=name)
            np.save(py, y)
            np.save(px, x)
        if n:
            paths[name] = px
    (work / "splits.json").write_text(json.dumps(
        {k: [str(c.path) for c in v] for k, v in parts.items()}, indent=1) + "\n")
    return paths


def deployable(net: Any) -> Any:
    """The trained network without its input normalisation (folded into conv 1): what is exported."""
    from apps.speech.nets import deployable as fold

    return fold(net)


def accuracy(net: Any, x: np.ndarray, y: np.ndarray) -> float:
    import torch

    net.eval()
    with torch.no_grad():
        pred = torch.cat([net(torch.from_numpy(to_input(x[i:i + 512]))).argmax(1)
                          for i in range(0, len(x), 512)]).numpy()
    return float((pred == y).mean())


def averaged(ema: Any, tx: np.ndarray, seed: int, n: int = 2048) -> Any:
    """The weight average with its BatchNorm statistics recomputed on ``n`` clean training windows (the
    averaged weights need their own; averaging the running statistics does not give them)."""
    import torch

    net = ema.module
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the batches below
    idx = np.sort(np.random.default_rng(seed).choice(len(tx), min(n, len(tx)), replace=False))
    net.train()
    with torch.no_grad():
        for i in range(0, len(idx), 256):
            net(torch.from_numpy(to_input(tx[idx[i:i + 256], 0])))
    return net.eval()


def fit(args: argparse.Namespace, paths: dict[str, Path]) -> Any:
    import torch
    from tqdm import tqdm

    from apps.speech.nets import make_net

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    tx = np.load(paths["train"])  # in memory: random batches from a memory map are slow
    ty = np.load(paths["train"].with_name("train_y.npy"))
    real = len(ty)
    for name in ("synth", "synth_kw"):
        if name in paths:
            tx = np.concatenate([tx, np.load(paths[name])])
            ty = np.concatenate([ty, np.load(paths[name].with_name(f"{name}_y.npy"))])
    sx, sy = np.load(paths["select"])[:, 0], np.load(paths["select"].with_name("select_y.npy"))
    soft = teacher_logits(args.teacher, tx, args.work / "teacher_logits.npy") if args.teacher else None
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    net = make_net(args.arch, args.width, args.depth).to(memory_format=fmt)
    ema = torch.optim.swa_utils.AveragedModel(
        net, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(args.ema)) if args.ema else None
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-3)
    weights = sampling_weights(ty, real, args.unknown_weight, args.synth_share)
    draws = (real if args.synth_share else len(ty)) // args.batch * args.batch  # samples per epoch
    steps = args.epochs * (draws // args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=steps, pct_start=0.05)
    ckpt, start, log = args.work / "checkpoint.pt", 0, []
    if ckpt.exists() and not args.restart:
        state = torch.load(ckpt, weights_only=False)
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        start, log = state["epoch"], state["log"]
        print(f"resumed from {ckpt} after epoch {start}")
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.05)
    for epoch in range(start, args.epochs):
        rng = np.random.default_rng(args.seed * 1000 + epoch)
        order = rng.choice(len(ty), size=draws, p=weights)
        net.train()
        t0, total = time.time(), 0.0
        bar = tqdm(range(0, len(order), args.batch), desc=f"epoch {epoch + 1}/{args.epochs}", unit="batch",
                   mininterval=10)
        for b in bar:
            idx = np.sort(order[b:b + args.batch])
            copy = rng.integers(0, tx.shape[1], len(idx))
            xb = torch.from_numpy(spec_augment(roll_time(to_input(tx[idx, copy]), rng, args.max_roll), rng))
            xb = xb.contiguous(memory_format=fmt)
            yb = torch.from_numpy(ty[idx])
            if args.mixup:  # blend pairs of samples and their targets
                lam, perm = float(rng.beta(args.mixup, args.mixup)), torch.from_numpy(rng.permutation(len(idx)))
                out = net(lam * xb + (1 - lam) * xb[perm])
                loss = lam * loss_fn(out, yb) + (1 - lam) * loss_fn(out, yb[perm])
            elif soft is not None:
                out = net(xb)
                loss = distil(out, yb, torch.from_numpy(soft[idx, copy]), torch.from_numpy(idx < real), args)
            else:
                loss = loss_fn(net(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if ema is not None:
                ema.update_parameters(net)
            total += loss.item() * len(idx)
        log.append({"epoch": epoch + 1, "loss": total / len(order), "select_acc": accuracy(net, sx, sy),
                    "s": time.time() - t0})
        if ema is not None:
            log[-1]["select_acc_ema"] = accuracy(averaged(ema, tx, args.seed), sx, sy)
        print(json.dumps(log[-1]), flush=True)
        torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                    "epoch": epoch + 1, "log": log,
                    "ema": ema.state_dict() if ema is not None else None, "args": vars(args) | {"work": str(args.work),
                                                                         "out": str(args.out), "data": str(args.data)}},
                   ckpt)
    return averaged(ema, tx, args.seed) if ema is not None else net


def make_tiers(args: argparse.Namespace, onnx_path: Path, paths: dict[str, Path]) -> Any:
    from sdk.optimize import optimize

    tx = np.load(paths["train"], mmap_mode="r")
    rng = np.random.default_rng(args.seed)
    cal = to_input(tx[np.sort(rng.choice(len(tx), 512, replace=False)), 0])
    sx, sy = np.load(paths["select"])[:, 0], np.load(paths["select"].with_name("select_y.npy"))
    return optimize(onnx_path, calib=(cal, None), evalset=(to_input(sx), sy), out=args.out, name="speech-kws",
                    labels=LABELS, tiers=("fp32/onnxruntime", "int8/onnxruntime", "fp32/litert", "int8/litert"),
                    calib_limit=512, eval_limit=None)


def write_settings(args: argparse.Namespace, paths: dict[str, Path]) -> None:
    """speech.json (front end, labels, streaming defaults) and negatives.npz (for enrolment thresholds)."""
    from sdk.features.kws import KwsFrontend

    fe = KwsFrontend()
    meta = {"kind": "classifier", "labels": list(LABELS), "stream": asdict(StreamSettings()),
            "frontend": {"sample_rate": fe.sample_rate, "channels": fe.channels},
            "training": {"arch": args.arch, "width": args.width, "depth": args.depth, "epochs": args.epochs,
                         "seed": args.seed, "synth": args.synth, "synth_keywords": args.synth_keywords,
                         "synth_share": args.synth_share, "teacher": str(args.teacher or ""), "kd": args.kd,
                         "copies": args.copies, "unknown_weight": args.unknown_weight, "max_roll": args.max_roll}}
    from firmware_export.tflite_model import load

    m = load(args.out / "model.int8.tflite")
    scale, zero = m.tensors[m.inputs[0]].qparams()
    meta["input_quantization"] = [float(scale), int(zero)]  # the int8 grid every tier's input is put on
    (args.out / SETTINGS_FILE).write_text(json.dumps(meta, indent=1) + "\n")
    tx = np.load(paths["train"], mmap_mode="r")
    ty = np.load(paths["train"].with_name("train_y.npy"))
    rng = np.random.default_rng(args.seed)
    pick = [np.sort(rng.choice(np.flatnonzero(ty == LABELS.index(k)), n, replace=False))
            for k, n in (("unknown", 240), ("silence", 60))]
    np.savez_compressed(args.out / "negatives.npz", x=np.concatenate([tx[i, 0] for i in pick]))


def reference_profile(args: argparse.Namespace, paths: dict[str, Path]) -> None:
    """Drift reference: 200 ms chunks of training clips with the fp32 model's class probabilities."""
    from apps.speech.data import fit, read_audio
    from apps.speech.spotter import KeywordSpotter
    from sdk.telemetry import build_reference_profile, embed_in_manifest

    clips = splits(args.data)["train"]
    rng = np.random.default_rng(args.seed)
    spotter = KeywordSpotter(args.out, tier="fp32", backend="onnxruntime")
    items, outs = [], []
    for i in rng.choice(len(clips), 300, replace=False):
        pcm = fit(read_audio(clips[i].path))
        probs = spotter.probabilities(spotter.frontend(pcm))
        for c in range(0, len(pcm), 3200):
            items.append(pcm[c:c + 3200].astype(np.float32) / 32768)
            outs.append(probs)
    spotter.close()
    embed_in_manifest(build_reference_profile(items, "audio", outs, LABELS, sample_rate=16000), args.out)


def tune_stream(args: argparse.Namespace) -> dict[str, Any]:
    """Streaming defaults chosen on the select split (+ the enrolment word as unseen negatives)."""
    from apps.speech.augment import Noise
    from apps.speech.spotter import KeywordSpotter
    from apps.speech.tune import tune

    parts = splits(args.data)
    noise_dir = args.data / "speech_commands_extra" / "_background_noise_"
    noise = Noise.load(noise_dir).parts["select"] if noise_dir.is_dir() else []
    spotter = KeywordSpotter(args.out, tier="int8", backend="onnxruntime")
    result = tune(spotter, parts["select"] + parts["enroll"], noise, hours=args.tune_hours, seed=args.seed + 1)
    spotter.close()
    meta = json.loads((args.out / SETTINGS_FILE).read_text())
    meta["stream"] = result["chosen"]
    meta["selection"] = {k: result[k] for k in ("chosen_row", "keyword_events", "negative_hours", "max_fa_per_hour",
                                                "max_miss_rate")}
    (args.out / SETTINGS_FILE).write_text(json.dumps(meta, indent=1) + "\n")
    (args.work / "tune.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({"stream_settings": result["chosen"], "select": result["chosen_row"]}))
    return result


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m apps.speech.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=SHARED, help="folder with speech_commands/ and "
                   "speech_commands_extra/ (default: ../shared/data)")
    p.add_argument("--work", type=Path, default=Path("/work/train/speech"), help="caches and checkpoints")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "model", help="model folder to write")
    p.add_argument("--copies", type=int, default=10, help="feature copies per training clip (1 clean)")
    p.add_argument("--extra-silence", type=int, default=800, help="generated silence clips for training")
    p.add_argument("--synth", type=int, default=0, help="synthetic unknown-word clips (espeak-ng/flite) to add to "
                   "training (default 0)")
    p.add_argument("--synth-keywords", type=int, default=0, help="synthetic keyword clips (espeak-ng/flite) to add "
                   "to training (default 0)")
    p.add_argument("--synth-share", type=float, default=0.0, help="share of a class's draws that are synthetic "
                   "(e.g. 0.25; default 0: synthetic clips count like recorded ones); an epoch stays the size of "
                   "the recorded training set")
    p.add_argument("--teacher", type=Path, default=None, help="fp32 ONNX model of this app to distil from, e.g. "
                   "the shipped DS-CNN (its logits on every cached training window are computed once)")
    p.add_argument("--kd", type=float, default=0.5, help="weight of the distillation loss, the rest plain cross "
                   "entropy (with --teacher; sdk.compress.distill.kd_loss)")
    p.add_argument("--kd-temp", type=float, default=2.0, help="distillation temperature (with --teacher)")
    p.add_argument("--arch", choices=tuple(ARCHS), default="dscnn", help="network family (default dscnn)")
    p.add_argument("--width", type=int, default=None, help="channels (default: 64 dscnn, 8 bcresnet)")
    p.add_argument("--depth", type=int, default=None, help="blocks (default: 4 dscnn, 1 bcresnet = 1, 1, 2, 2 "
                   "blocks per stage)")
    p.add_argument("--epochs", type=int, default=24)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--unknown-weight", type=float, default=1.0, help="sampling weight of the unknown class "
                   "relative to a keyword class (default 1: balanced)")
    p.add_argument("--max-roll", type=int, default=0, help="random time shift of the features, frames (default 0)")
    p.add_argument("--mixup", type=float, default=0.0, help="mixup Beta(a, a) parameter (default 0: off)")
    p.add_argument("--ema", type=float, default=0.0, help="keep and ship an exponential moving average of the "
                   "weights with this decay per step, e.g. 0.998 (default 0: off)")
    p.add_argument("--channels-last", action="store_true", help="channels-last tensors: ~30 %% faster on CPU, "
                   "but not bit-identical to a run without it (the shipped model was trained without)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--tune-hours", type=float, default=2.0, help="negative stream for the threshold choice")
    p.add_argument("--restart", action="store_true", help="ignore the checkpoint in --work")
    p.add_argument("--stage", choices=("all", "cache", "fit", "export", "tune"), default="all",
                   help="stop after this stage (export: tiers from the checkpoint; tune: only the streaming settings)")
    args = p.parse_args(argv)
    width, depth = ARCHS[args.arch]
    args.width, args.depth = args.width or width, args.depth or depth
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.stage == "tune":
        tune_stream(args)
        return 0
    paths = build_cache(args.work, args.data, args.copies, args.seed, args.extra_silence, args.synth,
                        args.synth_keywords)
    if args.stage == "cache":
        return 0
    net = fit(args, paths)
    if args.stage == "fit":
        return 0
    vx, vy = np.load(paths["val"])[:, 0], np.load(paths["val"].with_name("val_y.npy"))
    print(json.dumps({"val_acc_fp32_torch": accuracy(net, vx, vy)}))
    from apps.speech.nets import export_onnx

    res = make_tiers(args, export_onnx(net, args.work / "speech-kws.onnx"), paths)
    write_settings(args, paths)
    reference_profile(args, paths)
    tune_stream(args)
    print(f"model folder: {res.folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
