"""QAT's eval mode is ONNX Runtime's int8 arithmetic: the exported QDQ model gives the same int8 outputs."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from sdk.compress.qat import export_qdq, float_model, quantize_aware
from sdk.compress.toy import tiny_cnn
from sdk.errors import ConfigError


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    net = tiny_cnn(8)
    with torch.no_grad():  # non-trivial batch norm, as after training
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.3, 0.3)
    return net.eval()


def test_qdq_export_matches_fake_quant_bit_for_bit(tmp_path) -> None:
    rng = np.random.default_rng(1)
    calib = rng.normal(0, 1, (64, 1, 8, 8)).astype(np.float32)
    q = quantize_aware(_model(), calib)
    path = export_qdq(q, tmp_path / "q.onnx", calib)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    x = rng.normal(0, 1.2, (200, 1, 8, 8)).astype(np.float32)  # wider than calibration: saturation too
    got = np.concatenate([sess.run(None, {"input": x[i:i + 1]})[0] for i in range(len(x))])
    with torch.no_grad():
        want = q(torch.from_numpy(x)).numpy()
    scale, zp = q.act_quant5.qparams()
    got_q, want_q = np.round(got / scale) + zp, np.round(want / scale) + zp
    assert len(np.unique(want_q)) > 20  # a real spread of int8 values, not a constant
    np.testing.assert_array_equal(got_q, want_q)
    with torch.no_grad():  # the fp32 twin is the float model (BN folded)
        np.testing.assert_allclose(float_model(q)(torch.from_numpy(x)).numpy(), _model()(torch.from_numpy(x)).numpy(),
                                   rtol=1e-4, atol=1e-4)


def test_unsupported_graph_is_a_clear_error() -> None:
    class Odd(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 2, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(self.conv(x)) * 2

    with pytest.raises(ConfigError, match="unsupported operation"):
        quantize_aware(Odd(), np.zeros((2, 1, 8, 8), np.float32))
