"""Rhythm alerts on synthetic beat sequences and signal-quality states."""

from __future__ import annotations

import numpy as np

from apps.health.frontend import RATE
from apps.health.quality import QualityMonitor, judge
from apps.health.records import read_record
from apps.health.rhythm import RhythmMonitor
from sdk.sources.ecg import synthetic_ecg


def feed(seq: str, rr_s: float = 0.8, usable: bool = True, mon: RhythmMonitor | None = None,
         start: int = 0) -> tuple[RhythmMonitor, list]:
    mon = mon or RhythmMonitor()
    out = []
    for k, c in enumerate(seq):
        out += mon.update(start + int(k * rr_s * RATE), c, usable)
    return mon, out


def started(events: list) -> list[str]:
    return [a.kind for what, a in events if what == "start"]


def test_normal_rhythm_raises_nothing() -> None:
    mon, ev = feed("N" * 40)
    assert ev == [] and abs(mon.hr - 75) < 0.5


def test_couplet_run_and_their_ends() -> None:
    _, ev = feed("N" * 10 + "VV" + "N" * 5 + "VVVV" + "N" * 5)
    assert started(ev) == ["v_couplet", "v_couplet", "v_run"]
    ends = [a for what, a in ev if what == "end"]
    assert [a.kind for a in ends] == ["v_couplet", "v_couplet", "v_run"] and all(a.end > a.start for a in ends)


def test_bigeminy_and_trigeminy() -> None:
    assert "bigeminy" in started(feed("N" * 10 + "NV" * 6)[1])
    assert "trigeminy" in started(feed("N" * 10 + "NNV" * 4)[1])


def test_brady_tachy_pause() -> None:
    assert started(feed("N" * 12, rr_s=1.5)[1]) == ["bradycardia"]
    assert started(feed("N" * 12, rr_s=0.4)[1]) == ["tachycardia"]
    mon, _ = feed("N" * 10)
    _, ev = feed("N", mon=mon, start=int(9 * 0.8 * RATE) + int(2.5 * RATE))
    assert started(ev) == ["pause"] and ev[0][1].info["rr_s"] == 2.5


def test_irregular_rr_is_flagged_regular_is_not() -> None:
    rng = np.random.default_rng(0)
    mon = RhythmMonitor()
    t, ev = 0, []
    for _ in range(40):
        t += int(rng.uniform(0.45, 1.1) * RATE)
        ev += mon.update(t, "N")
    assert "irregular" in started(ev)


def test_unusable_signal_suppresses_and_ends_alerts() -> None:
    mon, ev = feed("N" * 10 + "VVV")
    assert "v_run" in mon.active
    _, ev = feed("QQQQ", usable=False, mon=mon, start=20 * RATE)
    assert mon.active == {} and ev and ev[0][1].info["reason"] == "signal"
    # a long gap while the lead was off is no pause once the signal is back
    _, ev = feed("NN", mon=mon, start=40 * RATE)
    assert "pause" not in started(ev)


def test_quality_states() -> None:
    ecg = synthetic_ecg(4, noise=0.005, seed=2).signal[:2 * RATE]
    assert judge(ecg)[0] in ("good", "wander")
    assert judge(np.zeros(2 * RATE))[0] == "flat"
    sat = ecg.copy()
    sat[sat > 0.1] = 0.1
    sat[: RATE] = 0.1
    assert judge(sat)[0] == "saturated"
    assert judge(np.random.default_rng(0).normal(0, 0.5, 2 * RATE))[0] == "noisy"
    nan = ecg.copy()
    nan[:RATE] = np.nan
    assert judge(nan)[0] == "lead_off"
    q = QualityMonitor()
    states = q.process(np.concatenate([ecg, ecg, np.zeros(3 * RATE)]))
    assert states[0].usable and states[-1].state == "flat" and not q.usable_at(0)


def test_quality_on_noise_stress_records(shared_data) -> None:
    def share(name: str, lo: int, hi: int) -> float:
        sig = read_record(shared_data / "mitbih_noise" / name).signal[lo * RATE:hi * RATE]
        states = [judge(sig[s:s + 2 * RATE])[0] for s in range(0, len(sig) - 2 * RATE, RATE)]
        return float(np.mean([s in ("good", "wander") for s in states]))

    assert share("118e24", 0, 300) > 0.95          # clean start, then mild noise: usable
    assert share("118e00", 0, 300) > 0.95          # the first 5 minutes carry no noise
    assert share("118e00", 300, 420) < share("118e24", 300, 420)   # 0 dB motion noise: less usable
