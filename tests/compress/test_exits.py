"""Early-exit heads: the split keeps the network's function, the joint loss, ONNX export of every stage
and head, and the exit chain run by ONNX Runtime from the manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sdk.compress.cascade import load_chain, write_exits
from sdk.compress.exits import (
    add_exits,
    choose_threshold,
    cumulative_macs,
    exit_loss,
    exit_probs,
    export_exits,
)
from sdk.errors import ModelError
from sdk.models.manifest import Manifest
from sdk.models.variants import make_model_folder
from tests.compress._search_stub import INPUT_SHAPE, N_CLASSES, tiny_data, tiny_net


def exit_net(seed: int = 0):  # type: ignore[no-untyped-def]
    torch.manual_seed(seed)
    base = tiny_net(width=8, depth=3)
    return base, add_exits(base, at=["1", "5"], n_classes=N_CLASSES, input_shape=INPUT_SHAPE)


def test_exits_branch_where_asked_and_the_last_exit_is_the_original_network() -> None:
    base, net = exit_net()
    x = torch.from_numpy(tiny_data(5)[0])
    outs = net(x)
    assert len(outs) == 3 and all(o.shape == (5, N_CLASSES) for o in outs)
    assert len(net.stages) == 3 and len(net.heads) == 2
    assert torch.allclose(outs[-1], base(x), atol=1e-6)  # the backbone's weights, unchanged
    assert [len(s) for s in net.stages] == [2, 4, len(base) - 6]


def test_joint_loss_is_the_weighted_sum_of_each_exits_cross_entropy() -> None:
    _, net = exit_net()
    x, y = (torch.from_numpy(a) for a in tiny_data(16))
    outs = net(x)
    ce = [torch.nn.functional.cross_entropy(o, y).item() for o in outs]
    assert exit_loss([0.3, 0.3, 1.0])(net, x, y).item() == pytest.approx(0.3 * ce[0] + 0.3 * ce[1] + ce[2], rel=1e-5)
    assert exit_loss()(net, x, y).item() == pytest.approx(sum(ce), rel=1e-5)


def test_bad_branch_points_are_clear_errors() -> None:
    with pytest.raises(ModelError, match="nn.Sequential"):
        add_exits(torch.nn.Linear(3, 3), at=["0"], n_classes=2, input_shape=(1, 3))
    with pytest.raises(ModelError, match="no child named '42'"):
        add_exits(tiny_net(), at=["42"], n_classes=N_CLASSES, input_shape=INPUT_SHAPE)
    with pytest.raises(ModelError, match="before the last"):
        add_exits(tiny_net(), at=[str(len(tiny_net()) - 1)], n_classes=N_CLASSES, input_shape=INPUT_SHAPE)


def test_exported_chain_runs_in_onnx_runtime_as_the_torch_exits_decide(tmp_path: Path) -> None:
    _, net = exit_net()
    stages, full = export_exits(net, tmp_path, INPUT_SHAPE)
    make_model_folder(tmp_path, full, "exits", tiers=("fp32",))
    x, y = tiny_data(40, seed=1)
    probs = exit_probs(net, x)
    costs = cumulative_macs(stages)
    assert costs[0] < costs[1] < costs[2] and stages[0]["body"]["macs"] > 0
    choice = choose_threshold(probs, y, costs, budget_points=100.0, z=0.0)  # anything goes: the cheapest
    write_exits(tmp_path, stages, choice, budget_points=100.0)
    m = Manifest.load(tmp_path)
    assert m.extra["exits"]["kind"] == "early_exit" and len(m.extra["exits"]["stages"]) == 3
    chain = load_chain(m)
    assert chain is not None
    for threshold in (0.0, choice.threshold, 2.0):
        chain.threshold = threshold
        for i in range(len(x)):
            out, k = chain.run(x[i:i + 1])
            top = [p[i].max() for p in probs]
            want = next((j for j in range(2) if top[j] >= threshold), 2)
            if abs(top[min(want, 1)] - threshold) > 1e-4:  # leave exact ties to float rounding
                assert k == want
                np.testing.assert_allclose(torch.softmax(torch.from_numpy(out[0]), -1).numpy()[0], probs[k][i],
                                           atol=1e-4)
    chain.close()
    from sdk.events import EventBus
    from sdk.models.manager import ModelManager

    with ModelManager(tmp_path, bus=EventBus(), measure="never") as mgr:  # the manager serves the exits too
        for i in range(5):
            k = mgr.exits.run(x[i:i + 1])[1]
            np.testing.assert_allclose(torch.softmax(torch.from_numpy(mgr(x[i:i + 1])[0]), -1).numpy()[0],
                                       probs[k][i], atol=1e-4)
        assert sum(mgr.exits.counts) == 10
