"""The versioned model store: stage, promote, roll back, discard, refusals, and power cuts (SIGKILL)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sdk.errors import RolloutError, RolloutRejected
from sdk.models.store import ModelStore
from sdk.rollout.crashtest import install_kill_trials
from sdk.rollout.versions import VersionStore


def test_lifecycle_and_events(bundles: dict[str, Path], keys: tuple[Path, Path], model_dir: Path,
                              tmp_path: Path) -> None:
    events: list[tuple[str, dict]] = []
    store = VersionStore(tmp_path / "s", emit=lambda kind, **d: events.append((kind, d)))
    with pytest.raises(RolloutError, match="no active model"):
        store.active()
    assert store.install(bundles["1.0.0"], trusted_keys=[keys[1]], deployment="d1") == tmp_path / "s/versions/1.0.0"
    store.stage_candidate(bundles["1.1.0"], trusted_keys=[keys[1]], deployment="d2")
    assert store.versions()["candidate"] == "1.1.0" and store.active_version() == "1.0.0"
    store.promote()
    assert (store.active_version(), store.previous_version(), store.candidate_version()) == ("1.1.0", "1.0.0", None)
    assert os.readlink(tmp_path / "s" / "active") == "versions/1.1.0"
    assert ModelStore(tmp_path / "s" / "active").manifest.version == "1.1.0"
    store.stage_candidate(model_dir, version="1.2.0")
    store.discard_candidate(reason="shadow test failed")
    store.rollback(reason="canary regression")
    assert (store.active_version(), store.previous_version()) == ("1.0.0", None)
    assert sorted(p.name for p in (tmp_path / "s" / "versions").iterdir()) == ["1.0.0"]
    reopened = VersionStore(tmp_path / "s", emit=lambda *a, **k: None)
    assert reopened.versions() == store.versions()
    reopened.stage_candidate(model_dir, version="1.3.0")  # another instance (process) changes the store
    assert store.refresh().candidate_version() == "1.3.0"
    store.promote()  # re-reads under the lock: promotes what the other instance staged
    assert reopened.refresh().active_version() == "1.3.0"
    store.rollback()
    kinds = [k for k, _ in events]
    assert kinds == ["rollout.staged", "rollout.promoted", "rollout.staged", "rollout.promoted", "rollout.staged",
                     "rollout.discarded", "rollout.rolled_back", "rollout.promoted", "rollout.rolled_back"]
    assert events[6][1] == {"version": "1.0.0", "rolled_back": "1.1.0", "reason": "canary regression",
                            "deployment": "d2"}


def test_refusals(bundles: dict[str, Path], keys: tuple[Path, Path], model_dir: Path, tmp_path: Path) -> None:
    events: list[tuple[str, dict]] = []
    store = VersionStore(tmp_path / "s", emit=lambda kind, **d: events.append((kind, d)))
    store.stage_candidate(bundles["1.1.0"], trusted_keys=[keys[1]])
    store.promote()
    with pytest.raises(RolloutRejected, match="downgrade"):
        store.stage_candidate(bundles["1.0.0"], trusted_keys=[keys[1]], deployment="d9")
    with pytest.raises(RolloutRejected, match="untrusted_key"):
        store.stage_candidate(bundles["2.0.0"], trusted_keys=[])
    with pytest.raises(RolloutRejected, match="downgrade"):
        store.stage_candidate(model_dir, version="1.1.0")
    assert [(k, d["reason"]) for k, d in events if k == "rollout.rejected"] == [
        ("rollout.rejected", "downgrade"), ("rollout.rejected", "untrusted_key"), ("rollout.rejected", "downgrade")]
    assert next(d for k, d in events if k == "rollout.rejected")["deployment"] == "d9"
    with pytest.raises(RolloutError, match="no previous version"):
        store.rollback()
    with pytest.raises(RolloutError, match="no candidate"):
        store.promote()
    assert store.active_version() == "1.1.0" and not any((tmp_path / "s" / ".tmp").iterdir())
    store.stage_candidate(bundles["1.0.0"], trusted_keys=[keys[1]], allow_downgrade=True)  # an explicit rollback
    store.promote()
    assert store.active_version() == "1.0.0"
    with pytest.raises(RolloutError, match="cannot roll back to 0.9"):
        store.rollback(to="0.9")


def test_state_file_damage_is_a_clear_error(tmp_path: Path, model_dir: Path) -> None:
    store = VersionStore(tmp_path / "s", emit=lambda *a, **k: None)
    store.stage_candidate(model_dir)
    (tmp_path / "s" / "state.json").write_text(json.dumps({"active": "one"}))
    with pytest.raises(RolloutError, match="unreadable model store state"):
        VersionStore(tmp_path / "s")


def test_sigkill_during_installs_never_bricks(tmp_path: Path) -> None:
    result = install_kill_trials(100, seed=3, workdir=tmp_path)
    assert result["problems"] == [] and result["bricked"] == 0
    assert result["interrupted"] >= 20  # the kills did land inside operations, not only between them
    assert result["versions_seen"] >= 5  # and the child got far enough to switch versions many times


def test_manifest_version_field_round_trips_and_is_checked(model_dir: Path) -> None:
    from sdk.errors import ModelError
    from sdk.models.manifest import Manifest

    data = json.loads((model_dir / "manifest.json").read_text())
    assert Manifest.from_dict(data).version == "1.0.0" and Manifest.from_dict(data).to_dict()["version"] == "1.0.0"
    assert "version" not in Manifest.from_dict({k: v for k, v in data.items() if k != "version"}).to_dict()
    with pytest.raises(ModelError, match="version"):
        Manifest.from_dict(data | {"version": "1.0-beta"})
