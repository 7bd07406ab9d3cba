"""Distillation losses on hand-computed toy cases; ONNX teachers; detector pseudo-labels."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sdk.compress.distill import CachedTeacher, Distiller, OnnxTeacher, kd_loss, pseudo_labels
from sdk.compress.folder import export_onnx
from sdk.compress.toy import tiny_cnn
from sdk.errors import ConfigError, ModelError


def test_kd_loss_by_hand() -> None:
    s, t, y = torch.tensor([[0.0, math.log(3.0)]]), torch.tensor([[math.log(3.0), 0.0]]), torch.tensor([1])
    # T = 1: p_t = (3/4, 1/4), p_s = (1/4, 3/4); KL = 3/4 ln 3 + 1/4 ln(1/3) = ln(3) / 2; CE = -ln(3/4)
    want = 0.5 * math.log(3) / 2 + 0.5 * -math.log(0.75)
    assert kd_loss(s, t, y, temperature=1.0, alpha=0.5).item() == pytest.approx(want, rel=1e-6)
    # T = 2: logits halved -> p_t = (sqrt3, 1)/(sqrt3 + 1); KL scaled by T^2 = 4; alpha = 1: no label term
    a = math.sqrt(3) / (math.sqrt(3) + 1)
    kl = a * math.log(a / (1 - a)) + (1 - a) * math.log((1 - a) / a)
    assert kd_loss(s, t, y, temperature=2.0, alpha=1.0).item() == pytest.approx(4 * kl, rel=1e-6)
    assert kd_loss(t, t, torch.tensor([0]), 3.0, 1.0).item() == pytest.approx(0.0, abs=1e-5)


def test_onnx_and_cached_teachers_give_the_torch_teachers_logits(tmp_path) -> None:
    torch.manual_seed(0)
    teacher = tiny_cnn().eval()
    x = np.random.default_rng(0).normal(size=(6, 1, 8, 8)).astype(np.float32)
    onnx_t = OnnxTeacher(export_onnx(teacher, tmp_path / "t.onnx", x))
    with torch.no_grad():
        want = teacher(torch.from_numpy(x))
    torch.testing.assert_close(onnx_t(torch.from_numpy(x)), want, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(CachedTeacher(teacher, x)(torch.from_numpy(x[[4, 1]])), want[[4, 1]])
    with pytest.raises(ModelError, match="not found"):
        OnnxTeacher(tmp_path / "missing.onnx")


def test_feature_hint_adds_a_trainable_adapter() -> None:
    torch.manual_seed(0)
    teacher, student = tiny_cnn(8).eval(), tiny_cnn(4)
    kd = Distiller(teacher, hint=("pw.0", "pw.0"))
    kd.attach(student)
    assert student.kd_adapter.weight.shape == (8, 4, 1, 1)
    x, y = torch.randn(3, 1, 8, 8), torch.tensor([0, 1, 2])
    loss = kd(student, x, y)
    loss.backward()
    assert student.kd_adapter.weight.grad is not None and loss.item() > kd_loss(student(x), teacher(x), y).item()
    kd.detach(student)
    assert not hasattr(student, "kd_adapter")
    with pytest.raises(ConfigError, match="no layer"):
        Distiller(teacher, hint=("pw.0", "nope"))


def test_pseudo_labels_threshold_and_suppress_duplicates() -> None:
    det = np.array([[0, 0, 10, 10, 0.9, 1], [1, 1, 10, 10, 0.8, 1],  # duplicate of the first (IoU 0.81)
                    [1, 1, 10, 10, 0.7, 2],  # same place, other class: kept
                    [20, 20, 30, 30, 0.3, 1]], np.float32)  # below the threshold
    (out,) = pseudo_labels([det], score_threshold=0.5, iou_threshold=0.6)
    np.testing.assert_array_equal(out["labels"], [1, 2])
    np.testing.assert_allclose(out["weights"], [0.9, 0.7])
    np.testing.assert_array_equal(out["boxes"][0], [0, 0, 10, 10])
