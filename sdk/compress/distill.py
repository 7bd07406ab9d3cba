"""Knowledge distillation: a teacher's softened outputs (+ hard labels) train a student; optional
feature distillation through a hint layer with a 1x1 adapter; pseudo-labels from a detector teacher.

    from sdk.compress.distill import Distiller, OnnxTeacher
    kd = Distiller(teacher, temperature=4.0, alpha=0.7)                 # a torch module or OnnxTeacher
    kd = Distiller(OnnxTeacher("big.onnx"), hint=("3.pw", "5.pw"))      # + feature hint (student, teacher layer)
    kd.attach(student)                                                  # the hint adapter trains with the student
    fit(student, train, epochs=10, lr=3e-3, loss_fn=kd)
    kd.detach(student)

Loss: ``alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, y)`` (+ ``beta * MSE(adapter(s_f), t_f)``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sdk.errors import ConfigError, ModelError


def kd_loss(student_logits: Any, teacher_logits: Any, labels: Any, temperature: float = 4.0,
            alpha: float = 0.7) -> Any:
    """Hinton et al.: temperature-softened KL to the teacher (scaled by T^2) blended with cross entropy."""
    import torch.nn.functional as F

    t = temperature
    soft = F.kl_div(F.log_softmax(student_logits / t, dim=1), F.softmax(teacher_logits / t, dim=1),
                    reduction="batchmean") * t * t
    return alpha * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)


class OnnxTeacher:
    """An ONNX model run through ONNX Runtime as a teacher: ``teacher(x_tensor) -> logits tensor``."""

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        import onnxruntime as ort

        if not Path(path).is_file():
            raise ModelError(f"{path}: teacher model not found")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - ORT raises its own exception types
            raise ModelError(f"{path}: ONNX Runtime cannot load the teacher ({str(e).splitlines()[0][:200]})") from None
        inp = self.session.get_inputs()[0]
        self.input_name, self.batch_one = inp.name, inp.shape[0] == 1

    def __call__(self, x: Any) -> Any:
        import torch

        a = np.ascontiguousarray(x.detach().numpy(), np.float32)
        if self.batch_one:  # a model exported at batch 1
            out = np.concatenate([self.session.run(None, {self.input_name: a[i:i + 1]})[0] for i in range(len(a))])
        else:
            out = self.session.run(None, {self.input_name: a})[0]
        return torch.from_numpy(out)

    def eval(self) -> OnnxTeacher:
        return self


class Distiller:
    """``loss_fn(student, x, y)`` for :func:`sdk.compress.fit` (see the module docstring)."""

    def __init__(self, teacher: Any, temperature: float = 4.0, alpha: float = 0.7,
                 hint: tuple[str, str] | None = None, beta: float = 1.0) -> None:
        if temperature <= 0 or not 0 <= alpha <= 1:
            raise ConfigError(f"distillation needs temperature > 0 and 0 <= alpha <= 1 (got {temperature}, {alpha})")
        if hint is not None and isinstance(teacher, OnnxTeacher):
            raise ConfigError("feature distillation (hint) needs a torch teacher; an ONNX teacher gives logits only")
        self.teacher, self.t, self.alpha, self.hint, self.beta = teacher, temperature, alpha, hint, beta
        self._feats: dict[str, Any] = {}
        self._hooks: list[Any] = []
        if hint is not None:
            self._hooks.append(_module(teacher, hint[1], "teacher").register_forward_hook(self._keep("t")))
        teacher.eval()

    def _keep(self, key: str) -> Any:
        def hook(_m: Any, _i: Any, out: Any) -> None:
            self._feats[key] = out
        return hook

    def attach(self, student: Any) -> None:
        """With a hint: hook the student's hint layer and add the 1x1 adapter (student -> teacher
        channels) to the student as ``kd_adapter``, so the optimizer trains it."""
        import torch

        if self.hint is None:
            return
        s_mod, t_mod = _module(student, self.hint[0], "student"), _module(self.teacher, self.hint[1], "teacher")
        cs, ct = _channels(s_mod), _channels(t_mod)
        student.kd_adapter = torch.nn.Conv2d(cs, ct, 1, bias=False)
        self._hooks.append(s_mod.register_forward_hook(self._keep("s")))

    def detach(self, student: Any) -> None:
        """Remove the hooks and the adapter (the student is then plain again, ready to export)."""
        for h in self._hooks:
            h.remove()
        self._hooks.clear()
        if hasattr(student, "kd_adapter"):
            del student.kd_adapter

    def __call__(self, student: Any, x: Any, y: Any) -> Any:
        import torch

        with torch.no_grad():
            t_logits = self.teacher(x)
        loss = kd_loss(student(x), t_logits, y, self.t, self.alpha)
        if self.hint is not None:
            s_f, t_f = student.kd_adapter(self._feats["s"]), self._feats["t"].detach()
            if s_f.shape != t_f.shape:
                raise ConfigError(f"hint layers give shapes {tuple(s_f.shape)} (adapted) and {tuple(t_f.shape)}; "
                                  "choose layers with the same spatial size")
            loss = loss + self.beta * torch.nn.functional.mse_loss(s_f, t_f)
        return loss


def _module(model: Any, name: str, who: str) -> Any:
    try:
        return model.get_submodule(name)
    except AttributeError:
        raise ConfigError(f"{who} has no layer {name!r} for the hint") from None


def _channels(m: Any) -> int:
    for attr in ("out_channels", "num_features", "out_features"):
        if hasattr(m, attr):
            return int(getattr(m, attr))
    raise ConfigError(f"cannot tell the channel count of hint layer {type(m).__name__}; use a conv or batch norm")


# ---- detectors -------------------------------------------------------------------------------------------
def pseudo_labels(detections: list[np.ndarray], score_threshold: float = 0.5, iou_threshold: float = 0.6,
                  max_boxes: int = 100) -> list[dict[str, np.ndarray]]:
    """A detector teacher's outputs as training targets for a student detector.

    ``detections``: per image ``[n, 6]`` rows ``x1, y1, x2, y2, score, class``. Keeps boxes scoring at
    least ``score_threshold``, removes same-class duplicates (IoU > ``iou_threshold``, the higher score
    wins) and returns per image ``{"boxes": [m, 4], "labels": [m] int64, "weights": [m]}`` where the
    weight is the teacher's score (soft targets for box distillation)."""
    out = []
    for det in detections:
        det = np.asarray(det, np.float32).reshape(-1, 6)
        det = det[det[:, 4] >= score_threshold]
        det = det[np.argsort(-det[:, 4], kind="stable")]
        keep: list[int] = []
        for i in range(len(det)):
            if len(keep) >= max_boxes:
                break
            same = [k for k in keep if det[k, 5] == det[i, 5]]
            if not same or _iou(det[i, :4], det[same, :4]).max() <= iou_threshold:
                keep.append(i)
        d = det[keep]
        out.append({"boxes": d[:, :4], "labels": d[:, 5].astype(np.int64), "weights": d[:, 4]})
    return out


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x1, y1 = np.maximum(box[0], boxes[:, 0]), np.maximum(box[1], boxes[:, 1])
    x2, y2 = np.minimum(box[2], boxes[:, 2]), np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-12)


class CachedTeacher:
    """A fixed teacher's outputs computed once for a training set and looked up per sample (by its
    bytes): distilling for many epochs or seeds then costs no teacher inference. Unseen inputs run
    the teacher."""

    def __init__(self, teacher: Any, x: np.ndarray, batch_size: int = 256) -> None:
        import torch

        self.teacher = teacher
        teacher.eval()
        with torch.no_grad():
            logits = [teacher(torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size], np.float32))).numpy()
                      for i in range(0, len(x), batch_size)]
        self.logits = np.concatenate(logits)
        self.index = {np.ascontiguousarray(row, np.float32).tobytes(): i for i, row in enumerate(x)}

    def __call__(self, x: Any) -> Any:
        import torch

        rows = [self.index.get(r.tobytes()) for r in np.ascontiguousarray(x.detach().numpy(), np.float32)]
        if any(r is None for r in rows):
            with torch.no_grad():
                return self.teacher(x)
        return torch.from_numpy(self.logits[rows])

    def eval(self) -> CachedTeacher:
        return self
