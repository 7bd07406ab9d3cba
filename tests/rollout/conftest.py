"""Fixtures of the rollout tests: a key pair, a tiny real ONNX model folder and its signed bundles."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdk.rollout.bundle import keygen, pack
from sdk.rollout.crashtest import tiny_model_folder


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("keys")
    keygen(d / "signing.key", d / "signing.pub")
    return d / "signing.key", d / "signing.pub"


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_folder(tmp_path_factory.mktemp("model") / "tiny", version="1.0.0")


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory, model_dir: Path, keys: tuple[Path, Path]) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bundles")
    return {v: pack(model_dir, keys[0], d / f"tiny-{v}.bundle", version=v) for v in ("1.0.0", "1.1.0", "2.0.0")}
