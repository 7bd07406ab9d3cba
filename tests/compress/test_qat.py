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


def test_litert_int8_carries_the_qat_grid_bit_for_bit(tmp_path) -> None:
    """The LiteRT int8 model made from the QAT QDQ model computes the same int8 outputs as ONNX Runtime:
    same scales and zero points everywhere (no recalibration), same int8 weights and int32 biases."""
    pytest.importorskip("ai_edge_litert")
    from sdk.compress.qat_tflite import qdq_to_tflite
    from sdk.optimize.data import Dataset
    from sdk.optimize.measure import predict_outputs

    rng = np.random.default_rng(2)
    calib = rng.normal(0, 1, (64, 1, 8, 8)).astype(np.float32)
    q = quantize_aware(_model(), calib)
    qdq = export_qdq(q, tmp_path / "q.onnx", calib)
    tfl = qdq_to_tflite(qdq, tmp_path / "q.int8.tflite")
    from ai_edge_litert.interpreter import Interpreter
    interp = Interpreter(model_path=str(tfl))
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    assert inp["dtype"] == np.int8 and out["dtype"] == np.int8  # full integer
    scale, zp = q.act_quant5.qparams()
    assert out["quantization"] == pytest.approx((scale, zp), rel=0, abs=0)  # the learned grid, not a calibrated one
    x = rng.normal(0, 1.2, (200, 1, 8, 8)).astype(np.float32)
    data = Dataset(x, np.zeros(len(x), np.int64))
    ort_out, lite_out = (np.asarray(predict_outputs(p, data)[0]) for p in (qdq, tfl))
    got, want = np.round(lite_out / scale) + zp, np.round(ort_out / scale) + zp
    assert len(np.unique(want)) > 20
    np.testing.assert_array_equal(got, want)


def test_litert_export_refuses_a_model_that_is_not_qdq(tmp_path) -> None:
    from sdk.compress.folder import export_onnx
    from sdk.compress.qat_tflite import qdq_to_tflite
    from sdk.errors import ExportError

    path = export_onnx(_model(), tmp_path / "fp32.onnx", np.zeros((1, 1, 8, 8), np.float32))
    with pytest.raises(ExportError, match="no QAT"):
        qdq_to_tflite(path, tmp_path / "x.tflite")
    with pytest.raises(ExportError, match="not found"):
        qdq_to_tflite(tmp_path / "missing.onnx", tmp_path / "x.tflite")
