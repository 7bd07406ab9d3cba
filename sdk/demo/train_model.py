"""Reproduce ``sdk/demo/quadrant.onnx``, the demo's small model: which quadrant is the ball in?

    python -m sdk.demo.train_model            # ~1 min on 2 CPU cores; needs the 'train' extra (torch)

Trained on random views of the demo scene (random crops, ball positions, colours, sizes, light
levels and noise), validated on a held-out seed; prints the validation accuracy.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from sdk.demo.scene import QUADRANTS, background_image, draw_ball, preprocess, quadrant_of

OUT = Path(__file__).with_name("quadrant.onnx")


def random_views(n: int, seed: int, size: tuple[int, int] = (320, 240)) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    rng = np.random.default_rng(seed)
    bg = background_image()
    w, h = size
    xs, ys = [], []
    for _ in range(n):
        s = rng.uniform(0.5, 1.5)
        cw, ch = int(min(bg.shape[1], w * s)), int(min(bg.shape[0], h * s))
        x0, y0 = rng.integers(0, bg.shape[1] - cw + 1), rng.integers(0, bg.shape[0] - ch + 1)
        img = cv2.resize(bg[y0:y0 + ch, x0:x0 + cw], size)
        if rng.random() < 0.2:
            img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        r = int(rng.uniform(0.07, 0.13) * h)
        cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
        draw_ball(img, cx, cy, r, tuple(int(c) for c in rng.integers(30, 256, 3)))
        img = np.clip(img * rng.uniform(0.3, 1.2) + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)
        xs.append(preprocess(img)[0])
        ys.append(quadrant_of(cx, cy, w, h))
    return np.stack(xs), np.array(ys)


def build_net():  # type: ignore[no-untyped-def]
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(),
        nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU(),
        nn.Conv2d(16, 16, 3, 2, 1), nn.ReLU(),
        nn.Conv2d(16, 16, 3, 2, 1), nn.ReLU(),
        nn.Flatten(), nn.Linear(16 * 4 * 4, len(QUADRANTS)),
    )


def train(out: Path = OUT, n_train: int = 12000, epochs: int = 8, seed: int = 0) -> float:
    import torch
    from tqdm import tqdm

    torch.manual_seed(seed)
    x, y = random_views(n_train, seed)
    xv, yv = random_views(1000, seed + 1000)
    net = build_net()
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in tqdm(range(epochs), desc="training", unit="epoch"):
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 128):
            idx = perm[i:i + 128]
            loss = torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        acc = float((net(torch.from_numpy(xv)).argmax(1).numpy() == yv).mean())
    export = torch.nn.Sequential(net, torch.nn.Softmax(dim=1))
    torch.onnx.export(export, torch.zeros(1, 3, 64, 64), str(out), input_names=["input"],
                      output_names=["probs"], opset_version=17, dynamo=False)
    print(f"validation accuracy {acc:.3f}; wrote {out}")
    return acc


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--epochs", type=int, default=8)
    a = ap.parse_args()
    train(a.out, epochs=a.epochs)
