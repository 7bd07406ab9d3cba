"""Shared fixtures for the runtime tests: one small model folder (fp32, fp16, int8 QDQ), built once."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from sdk.models.builtin import tiny_convnet
from sdk.models.variants import make_model_folder

HW = (32, 32)
CHANNELS = (8, 16)


@pytest.fixture(scope="session")
def model_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_convnet(tmp_path_factory.mktemp("src") / "tiny.onnx", input_hw=HW, channels=CHANNELS)


@pytest.fixture(scope="session")
def model_folder(model_src: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pristine model folder: tests that damage files must copy it first (``fresh_folder``)."""
    folder = tmp_path_factory.mktemp("tiny_model")
    logging.getLogger().setLevel(logging.ERROR)  # the quantizer logs advice at WARNING on the root logger
    make_model_folder(folder, model_src, "tiny", tiers=("fp32", "fp16", "int8"))
    return folder


@pytest.fixture
def fresh_folder(model_folder: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(model_folder, tmp_path / "model"))


@pytest.fixture(scope="session")
def inputs() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    # distinct per-channel brightness makes each frame's output recognisable (hot-swap tests)
    return [(0.4 * rng.random((1, 3, *HW)) + 0.6 * rng.random((1, 3, 1, 1))).astype(np.float32) for _ in range(40)]
