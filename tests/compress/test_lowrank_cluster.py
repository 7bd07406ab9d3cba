"""Factorization reconstructs each layer within its reported error; clustering keeps <= K values."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn

from sdk.compress import fit
from sdk.compress.cluster import cluster_weights, distinct_values, kmeans_1d
from sdk.compress.lowrank import choose_rank, factorize
from sdk.compress.toy import tiny_cnn, tiny_data
from sdk.errors import ConfigError


def _composed(seq: nn.Sequential) -> torch.Tensor:
    a, b = seq[0].weight.detach(), seq[1].weight.detach()
    return (b.reshape(b.shape[0], -1) @ a.reshape(a.shape[0], -1)).reshape(b.shape[0], *a.shape[1:])


def test_factorization_reconstructs_within_reported_error() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(6, 16, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 4 * 4, 10))
    out, report = factorize(model, rank=3)
    for name, (orig, new) in {"0": (model[0], out[0]), "3": (model[3], out[3])}.items():
        w = orig.weight.detach()
        w_r = _composed(new) if isinstance(orig, nn.Conv2d) else new[1].weight.detach() @ new[0].weight.detach()
        err = float(torch.linalg.norm(w - w_r) / torch.linalg.norm(w))
        assert err == pytest.approx(report[name]["rel_error"], rel=1e-4) and 0 < err < 1
        assert report[name]["rank"] == 3
    x = torch.randn(2, 6, 4, 4)
    assert out(x).shape == (2, 10)
    torch.testing.assert_close(out[0][1].bias, model[0].bias)


def test_tucker2_reconstructs_within_reported_error_and_runs_the_same_function() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(12, 16, 3, stride=2, padding=1)
    model = nn.Sequential(conv, nn.ReLU(), nn.Conv2d(16, 16, 1))
    out, report = factorize(model, rank=4, method="tucker2")
    a, core, c = out[0]
    assert report["0"]["rank"] == [4, 4] and report["0"]["method"] == "tucker2"
    assert report["0"]["params_after"] == 12 * 4 + 4 * 4 * 9 + 4 * 16 < report["0"]["params_before"]
    w_r = torch.einsum("oa,abhw,bi->oihw", c.weight.detach()[..., 0, 0], core.weight.detach(), a.weight.detach()[..., 0, 0])
    err = float(torch.linalg.norm(conv.weight.detach() - w_r) / torch.linalg.norm(conv.weight.detach()))
    assert err == pytest.approx(report["0"]["rel_error"], rel=1e-4) and 0 < err < 1
    x = torch.randn(2, 12, 8, 8)
    with torch.no_grad():  # the three layers compute conv(x, W_r) + b: stride and padding live in the core
        want = torch.nn.functional.conv2d(x, w_r, conv.bias, stride=2, padding=1)
        torch.testing.assert_close(out[0](x), want, rtol=1e-4, atol=1e-4)
    _, rep_full = factorize(model, rank=None, energy=1.0, method="tucker2")  # all ranks kept: no saving
    assert "0" not in rep_full
    assert isinstance(out[2], nn.Sequential)  # the 1x1 layer falls back to SVD
    with pytest.raises(ConfigError, match="svd. or .tucker2"):
        factorize(model, rank=4, method="cp")


def test_energy_target_and_full_rank_is_exact() -> None:
    s = np.array([3.0, 2.0, 1.0, 0.1])
    assert choose_rank(s, None, 0.9) == 2 and choose_rank(s, None, 1.0) == 4 and choose_rank(s, 9, None) == 4
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(40, 30))
    _, report = factorize(model, rank=10)  # rank 10 saves (10*70 < 1200); error from the dropped values
    assert report["0"]["params_after"] == 700
    _, none = factorize(model, rank=30)  # no saving: the layer is kept
    assert none == {}


def test_kmeans_and_clustering_keep_at_most_k_values_after_fine_tuning() -> None:
    c, a = kmeans_1d(np.array([0.0, 0.1, 5.0, 5.2, 9.0]), 3)
    np.testing.assert_allclose(c[a], [0.05, 0.05, 5.1, 5.1, 9.0])
    torch.manual_seed(0)
    train, _ = tiny_data(64)
    model, books = cluster_weights(tiny_cnn(8), k=4, min_weights=16)
    books.attach(model)
    before = {n: model.get_submodule(n).weight.detach().clone() for n in books.assignments}
    fit(model, train, epochs=1, lr=1e-2, after_step=books.snap, progress=False)
    books.detach()
    counts = distinct_values(model)
    assert all(counts[n] <= 4 for n in books.assignments)
    assert any(not torch.equal(before[n], model.get_submodule(n).weight) for n in books.assignments)  # it trained
    sizes = books.size_bytes(model)
    assert sizes["clustered_bytes"] < sizes["fp32_bytes"]
