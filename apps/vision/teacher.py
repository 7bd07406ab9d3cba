"""Pseudo-labels from a teacher detector (YOLOX-nano): run it once over the training images and
cache its boxes for Ember's classes, so training never runs the teacher again.

    python -m apps.vision.teacher --teacher ../shared/models/yolox_nano.onnx --out /work/train/vision/teacher.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from apps.vision.data import COCO_IDS, load_folder
from sdk.detect.boxes import batched_nms, letterbox
from sdk.detect.decoders import decode_yolox


class YoloxTeacher:
    """YOLOX-style ONNX model (BGR 0-255, top-left letterbox padded with 114) restricted to our classes."""

    def __init__(self, path: Path | str, threads: int = 1) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        inp = self.session.get_inputs()[0]
        self.name, self.size = inp.name, (int(inp.shape[2]), int(inp.shape[3]))
        self.keep = np.array(COCO_IDS)

    def __call__(self, bgr: np.ndarray, threshold: float = 0.05) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        img, lb = letterbox(bgr, self.size, center=False)
        x = img.transpose(2, 0, 1)[None].astype(np.float32)
        out = self.session.run(None, {self.name: x})[0][0]
        out = np.concatenate([out[:, :5], out[:, 5:][:, self.keep]], axis=1)
        raw = decode_yolox([out], self.size, threshold)
        keep = batched_nms(raw.boxes, raw.scores, raw.classes, 0.65)
        return lb.to_image(raw.boxes[keep]), raw.scores[keep], raw.classes[keep]


def main(argv: list[str] | None = None) -> int:
    import cv2
    from tqdm import tqdm

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", default="../shared/models/yolox_nano.onnx")
    ap.add_argument("--data", nargs="+", default=["../shared/data/detection/train",
                    "../shared/data/detection/unlabeled", "../shared/data/detection_extra/trafficvision"])
    ap.add_argument("--out", default="/work/train/vision/teacher.json")
    args = ap.parse_args(argv)
    teacher = YoloxTeacher(args.teacher)
    cache: dict[str, list] = {}
    for folder in args.data:
        for s in tqdm(load_folder(folder), desc=Path(folder).name):
            img = cv2.imread(str(s.path))
            b, sc, c = teacher(img)
            cache[str(s.path.resolve())] = [[*map(float, bb), float(ss), int(cc)] for bb, ss, cc in zip(b, sc, c)]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(cache))
    print(f"{len(cache)} images -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
