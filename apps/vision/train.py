"""Train Ember's tiny detector (needs the ``train`` extra), from scratch or from a checkpoint (``--init``).

    python -m apps.vision.train --work /work/train/vision/ms --steps 3000
    python -m apps.vision.train --work /work/train/vision/ms --init /work/train/vision/run3/ckpt.pt --steps 3000
    python -m apps.vision.train --work /work/train/vision/ms --export-only   # ONNX + tiers from the checkpoint

Recipe: ground truth + cached YOLOX-nano pseudo-boxes (``python -m apps.vision.teacher``; run first) for the
classes an image does not label, and YOLOX-nano run again on every augmented image (``--teacher``) for
dense soft targets of those classes and to guide the assignment of boxes to cells (SimOTA-lite,
:mod:`apps.vision.assign`); images drawn by folder and class weights (``--folder-weights``, ``--class-power``),
mosaic/scale/flip/colour augmentation, several input sizes (``--sizes``) before the last 20 %% of steps at
``--size``; quality focal loss on the class scores and GIoU on the boxes, AdamW with cosine decay and an
EMA of the weights. Batches are made (and the teacher run) in a second thread while torch trains.
Seeded (each step's augmentation from ``(seed, step)``) and resumable (``ckpt.pt`` every ``--save-every``
steps). A part of ``train`` is held out (``--dev``) to watch learning; ``val`` is never used here.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from apps.vision.assign import DenseTeacher, make_targets
from apps.vision.augment import Item, augment, merge_labels
from apps.vision.data import CLASSES, load_folder

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
MODEL_DIR = Path(__file__).resolve().parent / "model"


def load_items(folders: list[Path], cache: dict, max_side: int = 416) -> tuple[list[Item], list, list[int]]:
    """Images (longest side <= ``max_side``) with merged labels, their samples and folder indices."""
    import cv2
    from tqdm import tqdm

    items, samples, origin = [], [], []
    for f, folder in enumerate(folders):
        for s in tqdm(load_folder(folder), desc=f"load {folder.name}"):
            img = cv2.imread(str(s.path), cv2.IMREAD_COLOR)
            scale = min(1.0, max_side / max(img.shape[:2]))
            if scale < 1:
                img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            b, c, ib, ic = merge_labels(s, cache.get(str(s.path.resolve()), []))
            labeled = np.isin(np.arange(len(CLASSES)), list(s.labeled))
            items.append(Item(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), b * scale, c, ib * scale, ic, labeled))
            samples.append(s)
            origin.append(f)
    return items, samples, origin


def sampling_weights(items: list[Item], origin: list[int], folder_weights: list[float],
                     class_power: float) -> np.ndarray:
    """Probability of drawing each image: its folder's weight (one per ``--data`` folder, spread over
    that folder's images) times the mean over its classes of ``(most common / class count) ** class_power``
    (counts = images containing the class), so rare classes are drawn more often."""
    counts = np.zeros(len(CLASSES))
    for it in items:
        counts[np.unique(it.classes)] += 1
    boost = (counts.max() / np.maximum(counts, 1)) ** class_power
    per_folder = np.bincount(origin, minlength=len(folder_weights))
    w = np.array([folder_weights[o] / per_folder[o] * (boost[np.unique(it.classes)].mean() if len(it.classes)
                  else 1.0) for it, o in zip(items, origin)])
    return w / w.sum()


def giou_loss(a, b):
    import torch

    lt, rb = torch.max(a[:, :2], b[:, :2]), torch.min(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(1)
    area_a, area_b = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(1), (b[:, 2:] - b[:, :2]).prod(1)
    union = area_a + area_b - inter + 1e-6
    hull = (torch.max(a[:, 2:], b[:, 2:]) - torch.min(a[:, :2], b[:, :2])).prod(1) + 1e-6
    return 1 - inter / union + (hull - union) / hull


def losses(model, x, y, weight, box_t, pos):
    """Quality focal loss (soft targets, summed over cells and classes, per positive) and GIoU."""
    import torch
    from torch.nn import functional as F

    logits, boxes = model.raw(x)
    p = torch.sigmoid(logits)
    bce = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
    cls = (bce * (p - y).abs().pow(2) * weight).sum() / pos.sum().clamp(min=1)
    box = giou_loss(boxes[pos], box_t[pos]).mean() if pos.any() else boxes.sum() * 0
    return cls, box


def batch(items, size, rng, n, mosaic, p=None, teacher=None):
    """``n`` augmented images and their targets as torch tensors (image, scores, weights, boxes, positive)."""
    import torch

    xs, ts = [], []
    for _ in range(n):
        img, b, c, ib, ic, regions = augment(items, size, rng, mosaic, p)
        xs.append(img.transpose(2, 0, 1))
        t = make_targets(size, b, c, ib, ic, regions, len(CLASSES), teacher(img) if teacher else None)
        ts.append((t.scores, t.weight, t.boxes, t.positive))
    x = torch.from_numpy(np.stack(xs).astype(np.float32))
    return (x, *(torch.from_numpy(np.stack([t[k] for t in ts])) for k in range(4)))


def step_batch(args, items, draw, teacher, step):
    """The batch of ``step``: its own seeded generator, so prefetching and resuming change nothing."""
    rng = np.random.default_rng([args.seed, step])
    late = step >= args.steps * 0.8
    size = args.size if late else int(rng.choice(args.sizes))
    mosaic = args.mosaic if step < args.steps * 0.9 else 0.0  # last 10%: plain images
    return batch(items, size, rng, args.batch, mosaic, draw, teacher)


def dev_map(model, samples, size) -> float:
    """mAP@0.5 of the torch model on held-out training images (same post-processing as the app)."""
    import cv2
    import torch

    from sdk.detect.boxes import batched_nms, letterbox
    from sdk.detect.decoders import decode_yolov8
    from sdk.detect.metrics import ImageResult, evaluate_map

    results = []
    model.eval()
    with torch.no_grad():
        for s in samples:
            img, lb = letterbox(cv2.cvtColor(cv2.imread(str(s.path)), cv2.COLOR_BGR2RGB), (size, size))
            out = model(torch.from_numpy(img.transpose(2, 0, 1)[None].astype(np.float32)))
            raw = decode_yolov8([o.numpy() for o in out], (size, size), 0.01)
            k = batched_nms(raw.boxes, raw.scores, raw.classes, 0.5, 100)
            results.append(ImageResult(s.boxes, s.classes, lb.to_image(raw.boxes[k]), raw.scores[k],
                                       raw.classes[k], s.labeled))
    model.train()
    return evaluate_map(results, CLASSES)["map50"]


def learning_rate(args, step: int) -> float:
    """Warm-up then cosine decay to 5 % over ``[cycle_start, steps)`` (a later cycle restarts it)."""
    t = (step - args.cycle_start) / max(args.steps - args.cycle_start, 1)
    warm = min(1.0, (step - args.cycle_start + 1) / 200)
    return args.lr * warm * (0.5 * (1 + np.cos(np.pi * t)) * 0.95 + 0.05)


def dev_indices(args) -> set[int]:
    """Training images held out to watch learning and to score tiers (from the first folder)."""
    order = np.random.default_rng(args.seed).permutation(len(load_folder(args.data[0])))
    return set(order[: args.dev].tolist())


def make_model(cfg: dict):
    from apps.vision.net import TinyDet

    return TinyDet(len(CLASSES), width=cfg["width"], depth=cfg["depth"])


def _source_name(key: str) -> str:
    """The name of a tensor in a single-head (stride 8 or 16) checkpoint: its one head, ``cls`` and
    ``reg`` start every level's own."""
    parts = key.split(".")
    if parts[0] in ("heads", "cls", "reg") and parts[1].isdigit():
        return ".".join(["head" if parts[0] == "heads" else parts[0], *parts[2:]])
    return key


def init_from(model, ckpt: Path) -> int:
    """Copy a checkpoint's EMA weights into ``model`` wherever names and shapes match (a fine-tune;
    a single-head checkpoint's head starts each level's head)."""
    import torch

    src = torch.load(ckpt, weights_only=False)["ema"]
    own = model.state_dict()
    same = {k: src[n] for k in own for n in (k, _source_name(k)) if n in src and own[k].shape == src[n].shape}
    own.update(same)
    model.load_state_dict(own)
    return len(same)


def train(args) -> Path:
    import torch
    from tqdm import tqdm

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    cache = json.loads(Path(args.teacher_cache).read_text())
    items, samples, origin = load_items([Path(f) for f in args.data], cache)
    dev_idx = dev_indices(args)
    dev = [samples[i] for i in sorted(dev_idx)]
    origin = [o for i, o in enumerate(origin) if i not in dev_idx]
    items = [it for i, it in enumerate(items) if i not in dev_idx]
    if len(args.folder_weights) != len(args.data):
        raise SystemExit(f"--folder-weights needs one weight per --data folder ({len(args.data)})")
    draw = sampling_weights(items, origin, args.folder_weights, args.class_power)
    print("draw shares per folder:", np.round(np.bincount(origin, weights=draw), 3).tolist(), flush=True)
    cfg = {"width": args.width, "depth": args.depth, "size": args.size, "strides": [8, 16, 32]}
    model = make_model(cfg)
    if args.init and not (work / "ckpt.pt").exists():
        print(f"initialised from {args.init}: {init_from(model, Path(args.init))} tensors")
    ema = make_model(cfg)
    ema.load_state_dict(model.state_dict())
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=5e-4)
    step, log = 0, []
    ckpt = work / "ckpt.pt"
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    if ckpt.exists() and not args.restart:
        st = torch.load(ckpt, weights_only=False)
        model.load_state_dict(st["model"]); ema.load_state_dict(st["ema"]); opt.load_state_dict(st["opt"])
        step, log = st["step"], st["log"]
        torch.set_rng_state(st["torch_rng"])
    teacher = DenseTeacher(args.teacher) if args.teacher else None
    pool = ThreadPoolExecutor(1)  # the next batch (augmentation + teacher) while torch trains
    pending = pool.submit(step_batch, args, items, draw, teacher, step)
    bar = tqdm(total=args.steps, initial=step, desc="train")
    t0 = time.time()
    while step < args.steps:
        lr = learning_rate(args, step)
        for gparam in opt.param_groups:
            gparam["lr"] = lr
        x, y, weight, box_t, pos = pending.result()
        if step + 1 < args.steps:
            pending = pool.submit(step_batch, args, items, draw, teacher, step + 1)
        hm, box = losses(model, x, y, weight, box_t, pos)
        loss = hm + args.box_weight * box
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        step += 1
        decay = 0.999 * (1 - np.exp(-step / 300))
        with torch.no_grad():
            for e, p in zip(ema.state_dict().values(), model.state_dict().values()):
                e.copy_(e * decay + p.detach() * (1 - decay)) if e.dtype.is_floating_point else e.copy_(p)
        bar.update(1)
        bar.set_postfix(cls=f"{hm.item():.3f}", box=f"{box.item():.3f}", lr=f"{lr:.1e}")
        if step % args.save_every == 0 or step == args.steps:
            entry = {"step": step, "cls": hm.item(), "box": box.item(), "s": round(time.time() - t0)}
            if step % (args.save_every * args.eval_every) == 0 or step == args.steps:
                entry["dev_map50"] = dev_map(ema, dev, args.size)
            log.append(entry)
            print(json.dumps(entry), flush=True)
            torch.save({"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                        "step": step, "log": log, "torch_rng": torch.get_rng_state(),
                        "cfg": cfg}, work / "ckpt.tmp")
            (work / "ckpt.tmp").replace(ckpt)
    bar.close()
    return ckpt


def export(ckpt: Path, out_dir: Path) -> Path:
    """Write ``model.onnx`` (the EMA weights) and ``train.json`` (config + log) to ``out_dir``."""
    import torch

    st = torch.load(ckpt, weights_only=False)
    model = make_model(st["cfg"])
    model.load_state_dict(st["ema"])
    model.eval()
    size = st["cfg"]["size"]
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / "fp32.onnx"
    torch.onnx.export(model, torch.zeros(1, 3, size, size), str(onnx_path), input_names=["image"],
                      output_names=["boxes", "scores"], opset_version=13, dynamo=False)
    (out_dir / "train.json").write_text(json.dumps({"cfg": st["cfg"], "step": st["step"], "log": st["log"]}))
    return onnx_path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/work/train/vision", help="checkpoints and caches (outside the repo)")
    ap.add_argument("--data", nargs="+", default=[str(DATA / "detection" / "train"),
                    str(DATA / "detection_extra" / "trafficvision"), str(DATA / "detection" / "unlabeled")])
    ap.add_argument("--teacher-cache", default="/work/train/vision/teacher.json")
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=320, help="input size (multiple of 32)")
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--depth", type=int, default=1)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 288, 320, 352],
                    help="input sizes drawn per step before the last 20 %% of steps (multiples of 32, <= 416)")
    ap.add_argument("--teacher", default=str(DATA.parent / "models" / "yolox_nano.onnx"),
                    help="ONNX teacher run on every training image for dense soft targets ('' for none)")
    ap.add_argument("--lr", type=float, default=4e-3)
    ap.add_argument("--cycle-start", type=int, default=0,
                    help="step where the learning-rate cycle starts (resume a finished run with a larger --steps "
                    "and --cycle-start at its last step for a warm restart)")
    ap.add_argument("--box-weight", type=float, default=2.0)
    ap.add_argument("--mosaic", type=float, default=0.3)
    ap.add_argument("--folder-weights", type=float, nargs="+", default=[0.55, 0.15, 0.3],
                    help="share of drawn images from each --data folder (default: detection/train 55 %%, "
                    "the traffic-camera frames 15 %%, unlabeled 30 %%)")
    ap.add_argument("--class-power", type=float, default=0.5,
                    help="draw images with rare classes more often: weight (max count / count) ** POWER")
    ap.add_argument("--init", help="checkpoint whose EMA weights start the model where shapes match "
                    "(a fine-tune; ignored when resuming)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--dev", type=int, default=50, help="training images held out to watch learning")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save-every", type=int, default=100)
    ap.add_argument("--eval-every", type=int, default=5, help="dev mAP every N saves")
    ap.add_argument("--restart", action="store_true", help="ignore an existing checkpoint")
    ap.add_argument("--export-only", action="store_true")
    ap.add_argument("--out", default=str(MODEL_DIR), help="model folder to write")
    args = ap.parse_args(argv)
    ckpt = Path(args.work) / "ckpt.pt"
    if not args.export_only:
        if not Path(args.teacher_cache).exists():
            raise SystemExit(f"{args.teacher_cache} missing: run 'python -m apps.vision.teacher' first")
        ckpt = train(args)
    tmp = Path(args.work) / "export"
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"exported {export(ckpt, tmp)}")
    from apps.vision.tiers import make_tiers

    train_samples = load_folder(args.data[0])
    dev = [train_samples[i] for i in sorted(dev_indices(args))]
    print(f"tiers -> {make_tiers(tmp, Path(args.out), Path(args.data[0]), dev)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
