"""Rollout steps travel the one event path: EventBus → Telemetry → the spool (→ MQTT ``…/events``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sdk.errors import RolloutRejected
from sdk.events import EventBus
from sdk.rollout.versions import VersionStore
from sdk.telemetry.core import Telemetry
from sdk.telemetry.settings import TelemetrySettings


def test_rollout_events_reach_the_telemetry_spool(bundles: dict[str, Path], keys: tuple[Path, Path],
                                                  tmp_path: Path) -> None:
    bus = EventBus()
    tel = Telemetry(TelemetrySettings(spool=str(tmp_path / "s.db"), device_id="d1", fleet="f").finish(),
                    kind="image", bus=bus, device_state=dict).start()
    try:
        store = VersionStore(tmp_path / "store", emit=bus.publish)
        store.stage_candidate(bundles["1.1.0"], trusted_keys=[keys[1]], deployment="dep-1")
        store.promote()
        with pytest.raises(RolloutRejected):
            store.stage_candidate(bundles["1.0.0"], trusted_keys=[keys[1]], deployment="dep-2")
        msgs = [json.loads(m.payload) for m in tel.spool.pending(limit=100)]
    finally:
        tel.close()
    events = [(m["kind"], m["data"]) for m in msgs if m["type"] == "events"]
    assert [k for k, _ in events] == ["rollout.staged", "rollout.promoted", "rollout.rejected"]
    assert events[1][1]["deployment"] == "dep-1" and events[1][1]["version"] == "1.1.0"
    assert events[2][1]["reason"] == "downgrade" and events[2][1]["deployment"] == "dep-2"
    assert all(m["device"] == "d1" for m in msgs)
