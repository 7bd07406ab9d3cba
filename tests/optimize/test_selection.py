"""int8-mixed chooses its float layers on one part of the evaluation data and is reported on the other."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sdk.errors import ModelError
from sdk.optimize import optimize
from sdk.optimize.data import Dataset
from sdk.optimize.measure import predict, score


def test_split_is_seeded_disjoint_and_complete():
    d = Dataset(np.arange(10, dtype=np.float32)[:, None], np.arange(10))
    sel, rep = d.split(0.5)
    again, _ = d.split(0.5)
    assert len(sel) == len(rep) == 5 and np.array_equal(sel.x, again.x)
    assert sorted([*sel.y.tolist(), *rep.y.tolist()]) == list(range(10))
    assert np.array_equal(sel.x[:, 0], sel.y) and np.array_equal(rep.x[:, 0], rep.y)  # labels follow samples
    assert not np.array_equal(d.split(0.5, seed=1)[0].y, sel.y)
    with pytest.raises(ModelError, match="cannot be split"):
        Dataset(np.zeros((1, 1), np.float32)).split(0.5)


def test_mixed_is_chosen_on_the_selection_part_and_every_tier_scored_on_the_report_part(
        trained_onnx: Path, bars_data: dict, tmp_path: Path) -> None:
    ev = Dataset(bars_data["x_eval"][:60], bars_data["y_eval"][:60])
    sel, rep = ev.split(0.5)
    res = optimize(trained_onnx, bars_data["calib"][:16], (ev.x, ev.y), tmp_path / "m",
                   tiers=["int8-mixed/onnxruntime"], max_drop=100, device="test-device", report=False)
    fp32 = tmp_path / "m" / "model.fp32.onnx"
    assert res.fp32_score == pytest.approx(score(predict(fp32, rep), rep.y, "classification"))
    assert res.mixed is not None and res.mixed.selection["samples"] == len(sel) == 30
    assert res.mixed.selection["fp32_score"] == pytest.approx(score(predict(fp32, sel), sel.y, "classification"))
    assert res.mixed.steps[0]["excluded"] == [] and res.mixed.within_budget  # a 100-point budget: plain int8
