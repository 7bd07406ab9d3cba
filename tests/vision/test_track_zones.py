"""Tracker IDs over a synthetic moving-box sequence; ROI enter/leave and line-crossing events."""

from __future__ import annotations

import numpy as np
import pytest

from sdk.detect import Detection, Line, Region, Tracker, Zones
from sdk.errors import ConfigError


def _det(cx: float, cy: float, w: float = 30, h: float = 40, label: str = "car", score: float = 0.9) -> Detection:
    return Detection((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), score, {"person": 0, "car": 2}[label], label)


def _run(frames: list[list[Detection]], tracker: Tracker) -> list[dict[int, Detection]]:
    return [{t.track_id: t for t in tracker.update(dets)} for dets in frames]


def test_ids_persist_while_objects_cross_and_one_is_missed() -> None:
    frames = []
    for i in range(40):
        a = _det(20 + 8 * i, 100)  # left to right
        b = _det(340 - 8 * i, 110)  # right to left: they overlap around frame 20
        dets = [a, b]
        if i in (25, 26):  # the detector misses A for two frames
            dets = [b]
        frames.append(dets)
    out = _run(frames, Tracker(min_hits=2))
    assert out[0] == {}  # not confirmed yet
    ids = set().union(*[set(o) for o in out])
    assert len(ids) == 2, f"expected exactly two identities, got {ids}"
    # every frame after confirmation: A's id is the one moving right
    a_id = min(out[5], key=lambda k: out[5][k].box[0])
    for i, o in enumerate(out[2:], start=2):
        if a_id in o:
            assert abs((o[a_id].box[0] + o[a_id].box[2]) / 2 - (20 + 8 * i)) < 6
    assert a_id not in out[25] and a_id in out[27]  # coasted through the miss, same id after


def test_low_score_detections_extend_tracks_but_never_start_them() -> None:
    tr = Tracker(high=0.5, low=0.1, min_hits=1)
    first = tr.update([_det(50, 50)])
    tid = first[0].track_id
    out = tr.update([_det(52, 50, score=0.2), _det(200, 200, score=0.2)])
    assert [t.track_id for t in out] == [tid]
    assert len(tr.tracks) == 1


def test_classes_do_not_swap_ids() -> None:
    tr = Tracker(min_hits=1)
    car = tr.update([_det(50, 50)])[0].track_id
    out = tr.update([_det(51, 50, label="person")])
    assert all(t.track_id != car for t in out)


def test_track_is_dropped_after_max_missed() -> None:
    tr = Tracker(min_hits=1, max_missed=3)
    tr.update([_det(50, 50)])
    for _ in range(4):
        tr.update([])
    assert tr.tracks == []


def _tracked(tid: int, cx: float, cy: float, label: str = "car") -> Detection:
    d = _det(cx, cy, label=label)
    d.track_id = tid
    return d


def test_region_enter_and_leave_events() -> None:
    zones = Zones([Region.parse("100,100,100,100", "door")], anchor="center")
    events = []
    for f, x in enumerate([50, 90, 120, 150, 190, 230, 260]):
        events += zones.update([_tracked(1, x, 150)], frame=f)
    assert [(e["event"], e["frame"]) for e in events] == [("enter", 2), ("leave", 5)]
    assert events[0]["zone"] == "door" and events[0]["label"] == "car" and events[0]["track_id"] == 1
    assert zones.counts()["door"]["inside"] == 0


def test_polygon_region() -> None:
    tri = Region.parse("0,0,100,0,0,100")
    assert tri.contains(10, 10) and not tri.contains(90, 90)


def test_line_crossings_are_counted_per_class_and_direction() -> None:
    line = Line.parse("0,100,400,100")  # horizontal, a -> b points right: its right side is y > 100
    zones = Zones(lines=[line], anchor="center")
    tracks = {1: ("car", [60, 90, 110, 130]), 2: ("car", [150, 120, 95, 80]), 3: ("person", [40, 70, 99, 98])}
    events = []
    for f in range(4):
        events += zones.update([_tracked(tid, 100 + tid * 50, ys[f], label) for tid, (label, ys) in tracks.items()], f)
    crossings = [(e["track_id"], e["direction"]) for e in events if e["event"] == "cross"]
    assert crossings == [(1, "forward"), (2, "backward")]
    assert line.count_table() == {"car": {"forward": 1, "backward": 1}}
    # a path that passes beyond the segment's end does not cross it
    short = Line.parse("0,100,50,100")
    assert short.update(9, (200, 90), "car") is None and short.update(9, (200, 110), "car") is None


@pytest.mark.parametrize("spec", ["1,2,3", "a,b,c,d", "0,0,-5,5", ""])
def test_bad_region_specs_are_clear_errors(spec: str) -> None:
    with pytest.raises(ConfigError, match="--roi"):
        Region.parse(spec)


def test_bad_line_spec() -> None:
    with pytest.raises(ConfigError, match="--line"):
        Line.parse("5,5,5,5")


def test_kalman_predicts_through_a_gap() -> None:
    tr = Tracker(min_hits=1, max_missed=5)
    for i in range(10):
        tr.update([_det(10 + 10 * i, 50)])
    tr.update([])
    predicted = tr.tracks[0].box
    assert np.isclose((predicted[0] + predicted[2]) / 2, 110, atol=3)


def test_telemetry_reads_a_detector_frame_result() -> None:
    from sdk.telemetry import parse_output

    value = {"detections": [_det(10, 10), _det(50, 50, label="person", score=0.6)], "tracks": [], "tier": "fp32"}
    classes, confs, emb = parse_output(value)
    assert classes.tolist() == [2, 0] and confs.tolist() == pytest.approx([0.9, 0.6]) and emb is None
