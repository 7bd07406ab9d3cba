"""Structured pruning keeps the network valid and really shrinks it (coupled layers included)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn

from sdk.compress.folder import export_onnx, onnx_macs
from sdk.compress.graph import channel_graph
from sdk.compress.prune import magnitude_prune, prune, sparse_size_bytes, torch_macs
from sdk.errors import ConfigError


class Coupled(nn.Module):
    """Residual add, depthwise conv, batch norm, a concatenation and a view: every coupling case."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pw = nn.Conv2d(8, 8, 1)
        self.side = nn.Conv2d(8, 4, 1)
        self.mix = nn.Conv2d(12, 6, 1)
        self.head = nn.Linear(6, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.relu(self.bn(self.stem(x)))
        b = self.pw(torch.relu(self.dw(a))) + a  # residual: pw and stem share one channel set
        c = torch.cat([b, self.side(b)], dim=1)
        m = torch.relu(self.mix(c))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(m, 1), 1))


def _x(n: int = 4) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, 3, 8, 8)).astype(np.float32)


def test_groups_couple_residual_depthwise_and_concat() -> None:
    cg = channel_graph(Coupled())
    prunable = {tuple(sorted(g.producers)) for g in cg.prunable()}
    assert ("pw", "stem") in prunable  # the residual add merged them
    assert ("side",) in prunable and ("mix",) in prunable
    assert cg.inputs["dw"] == cg.outputs["stem"]  # depthwise follows its input
    assert [s for _, s in cg.inputs["mix"]] == [8, 4]  # the concatenation's two segments
    assert all(g.frozen for g in cg.groups.values() if g.producers == ["head"])


def test_pruned_network_is_valid_and_smaller_in_onnx(tmp_path) -> None:
    model = Coupled().eval()
    x = _x()
    small = prune(model, x, ratio=0.5)
    out = small(torch.from_numpy(x))
    assert out.shape == (4, 5)
    assert small.stem.out_channels == small.pw.out_channels == small.dw.groups == small.bn.num_features == 4
    assert small.mix.in_channels == 4 + 2 and small.mix.out_channels == small.head.in_features == 3
    big, little = export_onnx(model, tmp_path / "a.onnx", x), export_onnx(small, tmp_path / "b.onnx", x)
    assert onnx_macs(little) < 0.5 * onnx_macs(big)
    assert onnx_macs(little) == torch_macs(small, x)
    assert model.stem.out_channels == 8  # the input model is untouched


def test_l1_removes_the_weakest_channels() -> None:
    model = Coupled().eval()
    with torch.no_grad():
        model.side.weight[1].zero_()  # the weakest filter of its group
    small = prune(model, _x(), ratio=0.25, method="l1")
    assert small.side.out_channels == 3
    torch.testing.assert_close(small.side.bias, model.side.bias[[0, 2, 3]])
    assert small.mix.in_channels == 6 + 3  # mix reads [residual group (8 -> 6), side (4 -> 3)]


@pytest.mark.parametrize("method", ["activation", "taylor"])
def test_data_driven_scores(method: str) -> None:
    x, y = _x(16), np.arange(16) % 5
    small = prune(Coupled().eval(), x, ratio=0.5, method=method, data=(x, y))
    assert small(torch.from_numpy(x)).shape == (16, 5) and small.side.out_channels == 2


def test_mac_target_is_reached() -> None:
    model, x = Coupled().eval(), _x()
    target = torch_macs(model, x) // 2
    small = prune(model, x, macs=target)
    assert torch_macs(small, x) <= target and 0 < small.prune_ratio < 0.95


def test_frozen_and_bad_requests() -> None:
    class Viewed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.fc = nn.Conv2d(1, 4, 3), nn.Linear(4 * 6 * 6, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.conv(x).view(x.shape[0], -1))

    with pytest.raises(ConfigError, match="nothing to prune"):
        prune(Viewed(), np.zeros((1, 1, 8, 8), np.float32), ratio=0.5)
    with pytest.raises(ConfigError, match="exactly one"):
        prune(Coupled(), _x(), ratio=0.5, macs=10)
    with pytest.raises(ConfigError, match="needs data"):
        prune(Coupled(), _x(), ratio=0.5, method="taylor")


def test_magnitude_pruning_zeros_weights_but_keeps_shapes() -> None:
    model = Coupled().eval()
    sparse, _ = magnitude_prune(model, 0.7)
    w = sparse.mix.weight.detach().numpy()
    assert 0.65 <= (w == 0).mean() <= 0.75 and w.shape == model.mix.weight.shape
    sizes = sparse_size_bytes(sparse)
    assert sizes["zlib_bytes"] < sizes["dense_bytes"] == sparse_size_bytes(model)["dense_bytes"]


def test_channel_counts_round_to_a_multiple() -> None:
    from sdk.compress.prune import keep_indices

    scores = {0: np.arange(64.0), 1: np.arange(12.0), 2: np.arange(4.0)}
    kept = {g: len(v) for g, v in keep_indices(scores, 0.3, multiple=8).items()}
    assert kept == {0: 48, 1: 8, 2: 3}  # 44.8 -> 48; 8.4 -> 8; a group smaller than the multiple: plain ratio
    np.testing.assert_array_equal(keep_indices(scores, 0.5, multiple=8)[0], np.arange(32, 64))  # the best scores
    with pytest.raises(ConfigError, match="ratio"):
        keep_indices(scores, 1.0)
