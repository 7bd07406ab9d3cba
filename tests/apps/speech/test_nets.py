"""The network families of the training script: the exported form equals the trained one, and the
BC-ResNet goes through ONNX -> int8 TFLite -> Ember's C exporter within the 30 KB file target (untrained
weights: sizes and operators do not depend on training)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from apps.speech.batches import sampling_weights
from apps.speech.data import LABELS
from apps.speech.nets import deployable, export_onnx, make_net


def _randomised(net):
    """Non-trivial BatchNorm statistics, so folding and fusing are really exercised."""
    g = torch.Generator().manual_seed(0)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return net.eval()


@pytest.mark.parametrize("arch", ["dscnn", "bcresnet"])
def test_deployable_equals_the_trained_network(arch):
    net = _randomised(make_net(arch))
    x = torch.rand(3, 1, 49, 40) * 40  # log2 energies
    with torch.no_grad():
        np.testing.assert_allclose(deployable(net)(x).numpy(), net(x).numpy(), rtol=1e-4, atol=1e-4)


def test_bcresnet_int8_tflite_fits_30kb_and_exports_to_c(tmp_path):
    from firmware_export.lower import SUPPORTED_OPS
    from firmware_export.tflite_model import load
    from sdk.optimize.tflite_export import onnx_to_tflite

    onnx_path = export_onnx(_randomised(make_net("bcresnet")), tmp_path / "bc.onnx")
    cal = [np.random.default_rng(i).uniform(0, 8, (1, 1, 49, 40)).astype(np.float32) for i in range(8)]
    tfl = onnx_to_tflite(onnx_path, tmp_path / "bc.tflite", int8=True, calibration=cal)
    assert tfl.stat().st_size <= 30_000
    ops = {op.code for op in load(tfl).ops}
    assert ops <= SUPPORTED_OPS and "PAD" not in ops  # every padding is SAME or VALID
    assert {"RESIZE_NEAREST_NEIGHBOR", "MEAN", "ADD"} <= ops  # the broadcast path is in the graph


def test_synthetic_share_of_each_class():
    ty = np.array([0] * 10 + [10] * 40 + [11] * 5 + [0] * 30 + [10] * 60)  # 55 recorded, then synthetic
    w = sampling_weights(ty, 55, unknown_weight=1.0, synth_share=0.2)
    syn = np.arange(len(ty)) >= 55
    for c in (0, 10):
        assert w[(ty == c) & syn].sum() == pytest.approx(0.2 * w[ty == c].sum())
    assert w[ty == 11].sum() == pytest.approx(w[ty == 0].sum())  # classes stay balanced
    plain = sampling_weights(ty, 55, unknown_weight=2.0, synth_share=0.0)
    assert plain[ty == 10].sum() == pytest.approx(2 * plain[ty == 0].sum())
    assert len(set(plain[ty == 0])) == 1  # without a share, synthetic and recorded clips alike
    assert len(LABELS) == 12
