"""Recipe selection for the health classifier, nested inside the patient-wise CV (how the shipped recipe
was chosen): for each outer fold k, train on the three other folds and score on fold k+1 ("inner"
validation patients, never fold k's); ``--mode outer`` trains without fold k and scores fold k.

    python -m apps.health.nested --cv /work/train/health3 --name tmpl_morph5 --morph 0.5
    python -m apps.health.nested --cv /work/train/health3 --score NAME [NAME ...]

``--cv`` is a ``python -m apps.health.train --cv`` folder (its ``beats.npz`` and ``cv.json`` folds);
runs go to ``--cv``/nested/<mode>_<name>/. ``--score`` pools the runs' predictions and prints, per run,
N/S/V/F Se/+P and the selection score (mean of S and V Se and +P) as one JSON object.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from apps.health import train as T
from apps.health.dataset import MODEL_CLASSES
from apps.health.features import model_input
from apps.health.metrics import class_metrics


def score(m: dict) -> float:
    return float(np.mean([m[c][k] or 0 for c in "SV" for k in ("se", "ppv")]))


def run(a: argparse.Namespace, d: dict, folds: list[list[str]]) -> None:
    import torch

    torch.set_num_threads(1)
    x = model_input(d["window"], d["template"], d["rr"])
    work = a.cv / "nested" / f"{a.mode}_{a.name}"
    work.mkdir(parents=True, exist_ok=True)
    args = argparse.Namespace(seed=a.seed, lr=3e-3, epochs=a.epochs, per_epoch=40000, balance=a.balance,
                              arch=a.arch, dropout=a.dropout, morph=a.morph)
    for f in range(len(folds)):
        g = (f + 1) % len(folds) if a.mode == "inner" else f
        test = np.isin(d["record"], folds[g])
        train = ~test & ~np.isin(d["record"], folds[f])
        net = T.train_one(x[train], d["y"][train], work / f"f{f}.pt", args, f"{a.name} {a.mode} {f}")
        np.save(work / f"pred{f}.npy", T.predict(net, x[test]).argmax(1))
        np.save(work / f"idx{f}.npy", np.flatnonzero(test))


def pooled(a: argparse.Namespace, d: dict, names: list[str]) -> dict:
    out = {}
    for name in names:
        work = a.cv / "nested" / name
        pred = np.full(len(d["y"]), -1)
        for p in sorted(work.glob("pred*.npy")):
            pred[np.load(work / p.name.replace("pred", "idx"))] = np.load(p)
        m = (pred >= 0) & (d["copy"] == 0)
        cm = class_metrics(d["y"][m], pred[m], MODEL_CLASSES)
        out[name] = {c: {"se": cm[c]["se"], "ppv": cm[c]["ppv"]} for c in MODEL_CLASSES} | {"score": score(cm)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m apps.health.nested", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cv", type=Path, required=True, help="a train --cv folder (beats.npz, cv.json)")
    ap.add_argument("--name", help="name of this run")
    ap.add_argument("--mode", choices=("inner", "outer"), default="inner")
    ap.add_argument("--arch", default="rr")
    ap.add_argument("--dropout", type=float, default=0.5)
    ap.add_argument("--balance", type=float, default=0.6)
    ap.add_argument("--morph", type=float, default=0.0)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--score", nargs="+", metavar="RUN", help="score runs (<mode>_<name>) instead of training")
    a = ap.parse_args()
    with np.load(a.cv / "beats.npz") as z:
        d = {k: z[k] for k in z.files}
    folds = json.loads((a.cv / "cv.json").read_text())["folds"]
    if a.score:
        print(json.dumps(pooled(a, d, a.score), indent=2))
    else:
        run(a, d, folds)


if __name__ == "__main__":
    main()
