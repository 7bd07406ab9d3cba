"""The model store adapts a channels-first rank-3 manifest input (NCW) to a channels-last .tflite (NWC)."""

from __future__ import annotations

from sdk.models.store import _layout_transpose


def test_rank3_and_rank4_layouts() -> None:
    assert _layout_transpose([1, 3, 128], "NCW", (1, 128, 3)) == (0, 2, 1)
    assert _layout_transpose([1, 3, 128], "NCW", (1, 3, 128)) is None
    assert _layout_transpose([1, 3, 32, 32], "NCHW", (1, 32, 32, 3)) == (0, 2, 3, 1)
    assert _layout_transpose([1, 3, 32, 32], "NCHW", (1, 3, 32)) is None
