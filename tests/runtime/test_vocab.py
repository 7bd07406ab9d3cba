"""One vocabulary of tiers and backends: the manifest, the model manager, remote commands, rules and
the CLI accept exactly the same names (``sdk.vocab``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sdk.errors import BackendError, ConfigError, ModelError
from sdk.events import EventBus
from sdk.models.manager import ModelManager
from sdk.models.manifest import Manifest, Variant
from sdk.models.rules import parse_rule
from sdk.optimize.tiers import ALL_TIERS
from sdk.runtime.backends import get_backend
from sdk.telemetry.commands import CommandRejected, parse_command
from sdk.testing import FakeClock, ScriptedDevice
from sdk.util.jsonutil import dumps
from sdk.vocab import BACKENDS, PRECISIONS, parse_tier, tier_problem

# names a user might write: every precision with and without a prune prefix, and near misses
CANDIDATES = sorted({*PRECISIONS, *(f"pruned{n}-{p}" for n in ("0", "5", "05", "50", "99") for p in PRECISIONS),
                     "pruned100-int8", "pruned-int8", "prunedx-fp32", "PRUNED5-int8", "Int8", "int4", "fp64",
                     "int8-", "int8-mixed-dynamic", "fp32 ", " fp32", "pruned5-", "pruned5int8", "fp32\n", ""})


def _in_manifest(tier: str) -> bool:
    return Variant.from_dict({"tier": tier, "file": "m.onnx", "backend": "onnxruntime"}).usable


def _remote(tier: str) -> bool:
    try:
        parse_command(dumps({"cmd": "pin_tier", "tier": tier}))
        return True
    except CommandRejected:
        return False


def _in_rule(tier: str) -> bool:
    try:
        parse_rule(f"battery < 30 -> max_tier {tier}")
        return True
    except ConfigError:
        return False


@pytest.mark.parametrize("tier", CANDIDATES)
def test_a_tier_valid_in_a_manifest_is_valid_everywhere(tier: str) -> None:
    valid = _in_manifest(tier)
    assert _remote(tier) == valid
    assert (tier_problem(tier) is None) == valid
    if tier == tier.strip() and " " not in tier:  # a rule's action is split on spaces
        assert _in_rule(tier) == valid


def test_the_review_case_and_the_expected_split() -> None:
    assert _in_manifest("pruned5-int8") and _remote("pruned5-int8")
    assert parse_tier("pruned5-int8").pruned == 5 and parse_tier("pruned50-int8-mixed").precision == "int8-mixed"
    valid = [t for t in CANDIDATES if _in_manifest(t)]
    assert len(valid) == len(PRECISIONS) * 6  # bare + 5 prune prefixes; every near miss rejected


@pytest.mark.parametrize("backend", [*BACKENDS, "tensorrt", "ONNXRUNTIME", ""])
def test_backend_names_agree(backend: str) -> None:
    known = backend in BACKENDS
    assert Variant.from_dict({"tier": "fp32", "file": "m.onnx", "backend": backend}).usable == known
    try:
        parse_command(dumps({"cmd": "pin_tier", "tier": "fp32", "backend": backend}))
        remote = True
    except CommandRejected:
        remote = False
    assert remote == known
    if known:
        assert get_backend(backend).name == backend  # resolved by name
    else:
        with pytest.raises(BackendError, match="onnxruntime, litert, tinygrad"):
            get_backend(backend)


def test_optimize_builds_only_vocabulary_names() -> None:
    for key in ALL_TIERS:
        tier, backend = key.split("/")
        assert tier_problem(tier) is None and backend in BACKENDS


def test_a_pruned_variant_is_pinned_by_a_remote_command(model_folder: Path, tmp_path: Path, inputs) -> None:
    """End to end: a manifest lists ``pruned5-int8``; the ``pin_tier`` command for it is accepted and
    the manager serves that variant."""
    folder = Path(shutil.copytree(model_folder, tmp_path / "m"))
    shutil.copyfile(folder / "model.int8.onnx", folder / "model.pruned5-int8.onnx")
    m = Manifest.load(folder)
    m.add_variant("pruned5-int8", "model.pruned5-int8.onnx", "onnxruntime")
    m.save()
    clock = FakeClock()
    mgr = ModelManager(folder, backends=["onnxruntime"], device=ScriptedDevice(clock), clock=clock, bus=EventBus(),
                       background=False, decide_every_s=0.0, initial="fp32")
    cmd = parse_command(dumps({"cmd": "pin_tier", "tier": "pruned5-int8", "backend": "onnxruntime"}))
    mgr.pin(**cmd.args)
    mgr(inputs[0])
    assert mgr.current == ("pruned5-int8", "onnxruntime")
    with pytest.raises(ModelError, match="not a tier name"):
        mgr.pin("pruned-int8")
    with pytest.raises(BackendError, match="not one of onnxruntime, litert, tinygrad"):
        mgr.pin("fp32", "tensorrt")
    mgr.close()


def test_cli_options_take_the_same_names(capsys: pytest.CaptureFixture[str]) -> None:
    from sdk.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["run", "speech", "--tier", "pruned5-int8", "--backend", "litert"]).tier == "pruned5-int8"
    for bad in (["--tier", "int4"], ["--backend", "tensorrt"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["run", "speech", *bad])
        err = capsys.readouterr().err
        assert "int4' is not a tier name" in err or "invalid choice: 'tensorrt'" in err
