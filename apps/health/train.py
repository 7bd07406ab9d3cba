"""Train the beat classifier: ``python -m apps.health.train [--cv] [--final]`` (needs the ``train`` extra).

Patient-wise cross-validation on the records of ``--data`` (folds of whole records: no patient is in
both training and validation) chooses the recipe; ``--final`` trains on every record and writes the
model folder (ONNX fp32 + tiers via ``sdk.optimize``). Seeded, tqdm progress, resumable: each run
keeps a checkpoint per epoch under ``--work``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from apps.health.dataset import MODEL_CLASSES, build
from apps.health.features import CHANNELS, LEN, PRE, model_input

DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
HERE = Path(__file__).resolve().parent


def make_net(arch: str = "cnn", dropout: float = 0.0) -> Any:
    """``cnn``: one CNN over all channels. ``rr`` (shipped): the same CNN plus the 8 RR features through
    their own small MLP, the two heads summed (RR ratios are what tell S beats apart);
    ``dropout`` on the CNN's features makes the RR branch carry more of the decision."""
    import torch
    from torch import nn

    from apps.health.features import REPEAT, RR_NAMES

    def block(cin: int, cout: int, k: int) -> list[nn.Module]:
        return [nn.Conv1d(cin, cout, k, stride=2, padding=k // 2), nn.BatchNorm1d(cout), nn.ReLU()]

    k = len(MODEL_CLASSES)
    if arch == "cnn":
        return nn.Sequential(*block(CHANNELS, 8, 7), *block(8, 16, 5), *block(16, 16, 5), nn.Flatten(),
                             nn.Linear(16 * LEN // 8, 32), nn.ReLU(), nn.Linear(32, k))

    class RrNet(nn.Module):   # only ops the SDK's TFLite export knows (no Slice/Concat): the sum of two heads
        def __init__(self) -> None:
            super().__init__()
            self.cnn = nn.Sequential(*block(CHANNELS, 8, 7), *block(8, 16, 5), *block(16, 16, 5), nn.Flatten(),
                                     nn.Linear(16 * LEN // 8, 32), nn.ReLU(), nn.Dropout(dropout))
            n = CHANNELS * len(RR_NAMES)   # every channel averaged over REPEAT: channel 2 gives the RR features
            self.rr = nn.Sequential(nn.AvgPool1d(REPEAT), nn.Flatten(), nn.Linear(n, 16), nn.ReLU())
            self.head_cnn, self.head_rr = nn.Linear(32, k), nn.Linear(16, k)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head_cnn(self.cnn(x)) + self.head_rr(self.rr(x))

    return RrNet()


def sampling_weights(y: np.ndarray, power: float) -> np.ndarray:
    counts = np.bincount(y, minlength=len(MODEL_CLASSES)).astype(np.float64)
    w = (1.0 / np.maximum(counts, 1)) ** power
    return w[y] / w[y].sum()


def morph_augment(xb: Any, rng: np.random.Generator, p: float) -> Any:
    """The same random QRS widening (time stretch around the R peak + Gaussian blur) on a beat AND its
    patient template, for a share ``p`` of the batch: a wide beat is then only unusual (V) when the
    patient's usual beat is narrow, as with bundle branch block patients never seen in training."""
    import torch

    n, _, length = xb.shape
    pick = rng.random(n) < p
    if not pick.any():
        return xb
    k = int(pick.sum())
    centre = PRE // 2
    t = torch.arange(length, dtype=torch.float32)
    stretch = torch.from_numpy(rng.uniform(1.0, 1.6, k).astype(np.float32))[:, None]
    pos = (centre + (t[None] - centre) / stretch).clamp(0, length - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=length - 1)
    frac = pos - lo
    sub = xb[torch.from_numpy(pick)][:, :2]
    g = lambda idx: torch.gather(sub, 2, idx[:, None, :].expand(-1, 2, -1))
    sub = g(lo) * (1 - frac[:, None]) + g(hi) * frac[:, None]
    sigma = float(rng.uniform(0.5, 3.0))
    r = torch.arange(-8, 9, dtype=torch.float32)
    kern = torch.exp(-0.5 * (r / sigma) ** 2)
    kern = (kern / kern.sum()).repeat(2, 1, 1)
    sub = torch.nn.functional.conv1d(torch.nn.functional.pad(sub, (8, 8), mode="replicate"), kern, groups=2)
    xb[torch.from_numpy(pick), :2] = sub
    return xb


def train_one(x: np.ndarray, y: np.ndarray, ckpt: Path, args: argparse.Namespace, desc: str) -> Any:
    """Train a net on float inputs ``x`` [n, 2, LEN]; resumes from ``ckpt`` when it exists."""
    import torch
    from tqdm import tqdm

    torch.manual_seed(args.seed)
    net = make_net(args.arch, getattr(args, "dropout", 0.0))
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=args.epochs * (args.per_epoch // 256 + 1))
    start = 0
    if ckpt.is_file():
        state = torch.load(ckpt, weights_only=False)
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        start = state["epoch"]
    rng = np.random.default_rng(args.seed)
    p = sampling_weights(y, args.balance)
    for _ in range(start):   # replay the draws so a resumed run sees the same batches
        rng.choice(len(y), args.per_epoch, p=p)
        rng.uniform(0.6, 1.4, args.per_epoch)
    loss_fn = torch.nn.CrossEntropyLoss()
    aug_rng = np.random.default_rng(args.seed + 1000 + start)
    for epoch in tqdm(range(start, args.epochs), desc=desc, initial=start, total=args.epochs):
        idx = rng.choice(len(y), args.per_epoch, p=p)
        gain = rng.uniform(0.6, 1.4, args.per_epoch).astype(np.float32)
        net.train()
        for s in range(0, len(idx), 256):
            xb = torch.from_numpy(x[idx[s:s + 256]].copy())
            xb[:, :2] *= torch.from_numpy(gain[s:s + 256])[:, None, None]
            if getattr(args, "morph", 0.0) > 0:
                xb = morph_augment(xb, aug_rng, args.morph)
            loss = loss_fn(net(xb), torch.from_numpy(y[idx[s:s + 256]]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                    "epoch": epoch + 1}, ckpt)
    return net.eval()


def predict(net: Any, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return np.concatenate([net(torch.from_numpy(x[s:s + 4096])).numpy() for s in range(0, len(x), 4096)])


def folds_of(records: list[str], k: int, seed: int) -> list[list[str]]:
    order = sorted(records)
    np.random.default_rng(seed).shuffle(order)
    return [order[i::k] for i in range(k)]


def cross_validate(d: dict[str, np.ndarray], x: np.ndarray, args: argparse.Namespace) -> dict[str, Any]:
    from apps.health.metrics import class_metrics

    records = sorted(set(d["record"].tolist()))
    pred = np.full(len(d["y"]), -1)
    folds = folds_of(records, args.folds, args.seed)
    for f, held in enumerate(folds):
        test = np.isin(d["record"], held)
        net = train_one(x[~test], d["y"][~test], args.work / f"cv{f}.pt", args, f"fold {f + 1}/{len(folds)}")
        pred[test] = predict(net, x[test]).argmax(1)
        export_onnx(net, args.work / f"cv{f}.onnx")
    result: dict[str, Any] = {"folds": folds}
    for copy in sorted(set(d["copy"].tolist())):
        m = d["copy"] == copy
        result[f"copy{copy}"] = class_metrics(d["y"][m], pred[m], MODEL_CLASSES)
    np.save(args.work / "cv_pred.npy", pred)
    return result


def export_onnx(net: Any, path: Path) -> Path:
    import torch

    torch.onnx.export(net, torch.zeros(1, CHANNELS, LEN), str(path), input_names=["beat"], output_names=["logits"],
                      opset_version=17, dynamo=False)
    return path


def make_tiers(onnx: Path, x: np.ndarray, y: np.ndarray, out: Path, seed: int) -> None:
    """fp32 / int8 (ONNX Runtime) and fp32 / int8 (LiteRT) tiers with the SDK's optimizer."""
    from sdk.optimize import optimize

    rng = np.random.default_rng(seed)
    cal = rng.choice(len(y), 512, replace=False)
    ev = rng.choice(len(y), 2000, replace=False)
    optimize(onnx, x[cal], (x[ev], y[ev]), out, name="health-beats", labels=list(MODEL_CLASSES),
             tiers=("fp32/onnxruntime", "int8/onnxruntime", "fp32/litert", "int8/litert"),
             calib_limit=512, eval_limit=2000, report=False)
    add_tinygrad(out)


def add_tinygrad(folder: Path) -> None:
    """The fp32 ONNX file also as a tinygrad variant (measured on this machine)."""
    from sdk.models.manifest import Manifest
    from sdk.optimize import measure_folder

    m = Manifest.load(folder)
    m.add_variant("fp32", "model.fp32.onnx", "tinygrad")
    m.save(folder)
    measure_folder(folder, report=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m apps.health.train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA / "mitbih", help="WFDB records with .atr")
    ap.add_argument("--noise", type=Path, default=DEFAULT_DATA / "mitbih_noise", help="bw/ma noise records")
    ap.add_argument("--work", type=Path, default=Path("/work/train/health"), help="caches and checkpoints")
    ap.add_argument("--out", type=Path, default=HERE / "model", help="model folder to write (--final)")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--per-epoch", type=int, default=40000, help="beats drawn per epoch (class-balanced)")
    ap.add_argument("--balance", type=float, default=0.6, help="draw class c with weight count_c^-balance")
    ap.add_argument("--arch", choices=("cnn", "rr"), default="rr", help="cnn: one CNN; rr: + a late RR-feature MLP")
    ap.add_argument("--dropout", type=float, default=0.5, help="--arch rr: dropout on the CNN features")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--morph", type=float, default=0.5,
                    help="share of beats whose window and template get the same random QRS widening")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cv", action="store_true", help="patient-wise cross-validation")
    ap.add_argument("--final", action="store_true", help="train on every record, write the model folder")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    args.work.mkdir(parents=True, exist_ok=True)
    d = build(args.data, args.noise, args.work / "beats.npz", seed=args.seed)
    x = model_input(d["window"], d["template"], d["rr"])
    if args.cv:
        res = cross_validate(d, x, args)
        (args.work / "cv.json").write_text(json.dumps(res, indent=2, default=float) + "\n")
        print(json.dumps(res["copy0"], indent=2, default=float))
    if args.final:
        net = train_one(x, d["y"], args.work / "final.pt", args, "final (all records)")
        onnx = export_onnx(net, args.work / "health-beats.onnx")
        clean = d["copy"] == 0
        make_tiers(onnx, x[clean], d["y"][clean], args.out, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
