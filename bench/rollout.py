"""Model rollout, end to end: crash safety of installs, refusal of bad bundles, and canary + automatic
rollback in a simulated fleet on a real local mosquitto.

1. ``install_kill_trials``: SIGKILL a process that stages/promotes/rolls back at random moments
   (``--kills``, ≥ 100); a store is "bricked" when its active model no longer loads.
2. The bad-bundle corpus (``sdk.rollout.badbundles``, ≥ 50 cases: tampered, unsigned, wrong key,
   truncated, downgrade, oversized, bombs, path traversal, links ...) through ``unpack_verified``.
3. A simulated fleet (``--devices`` devices, each a real telemetry link, VersionStore and ONNX Runtime
   model) gets one good release (same outputs; promoted fleet-wide) and two bad ones, each through
   ``FleetController.deploy`` with a canary group: one that disagrees (stopped by the canary's shadow
   test) and one that is far slower with the same outputs (promoted on the canary, caught in the soak
   by its latency p95, rolled back). One device is offline during the good release and must install it
   when it reconnects (its MQTT session kept the command). Repeated ``--rounds`` times with fresh fleets.

    .venv/bin/python bench/rollout.py [--kills 100] [--devices 6] [--rounds 2]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import load, parser, write_result
from tqdm import tqdm

from sdk.fleet.broker import LocalBroker
from sdk.rollout.badbundles import check_corpus, make_corpus
from sdk.rollout.bundle import keygen, pack
from sdk.rollout.canary import Limits
from sdk.rollout.crashtest import install_kill_trials, tiny_model_folder
from sdk.rollout.deploy import DeploySpec, FleetController
from sdk.rollout.simfleet import SimFleet, serve_folder, sim_model
from sdk.telemetry.settings import TelemetrySettings

RELEASES = [("good", "1.1.0", {}), ("disagreeing", "1.2.0", {"swap": True}), ("slow", "1.3.0", {"slow": 600})]


def corpus(tmp: Path) -> dict[str, Any]:
    key, pub = tmp / "keys" / "signing.key", tmp / "keys" / "signing.pub"
    keygen(key, pub)
    good = pack(tiny_model_folder(tmp / "tiny", version="1.1.0"), key, tmp / "good.bundle")
    bad = make_corpus(good, key, tmp / "corpus")
    return check_corpus(bad, [pub], good=good)


def fleet_round(tmp: Path, devices: int, seed: int, soak_s: float) -> list[dict[str, Any]]:
    keygen(tmp / "k.key", tmp / "k.pub")
    (tmp / "www").mkdir()
    v1 = sim_model(tmp / "src" / "1.0.0", "1.0.0", seed=seed)
    out = []
    with LocalBroker(persistence=True, workdir=tmp / "mosq") as broker, \
            SimFleet(broker.url, devices, tmp / "fleet", v1, [tmp / "k.pub"], fps=60, report_s=0.1) as fleet, \
            serve_folder(tmp / "www") as url, \
            FleetController(TelemetrySettings(broker=broker.url, fleet="sim", device_id="bench").finish(),
                            discover_s=0.5) as fc:
        offline = fleet.devices[-1]
        offline.stop()  # offline during the good release: it must get it when it comes back
        for kind, version, model in RELEASES:
            b = pack(sim_model(tmp / "src" / version, version, seed=seed, **model), tmp / "k.key",
                     tmp / "www" / f"sim-{version}.bundle")
            if kind != "good" and offline.tel is None:
                t_back = time.monotonic()
                offline.start()
                while offline.version != out[0]["version"] and time.monotonic() - t_back < 60:
                    time.sleep(0.05)
                out[0].update(offline_device=offline.name, offline_caught_up=offline.version == out[0]["version"],
                              offline_catch_up_s=round(time.monotonic() - t_back, 2))
            before = fleet.versions()
            t0 = time.monotonic()
            report = fc.deploy(DeploySpec(b, canary="25%", url=f"{url}/{b.name}" if kind == "good" else None,
                                          shadow={"frames": 40, "fraction": 1.0, "min_agreement": 0.95},
                                          baseline_s=1.0, soak_s=soak_s, step_timeout_s=30,
                                          limits=Limits(max_p95_ratio=3.0), seed=seed))
            after = fleet.versions()
            out.append({"kind": kind, "version": version, "phase": report["phase"],
                        "seconds": round(time.monotonic() - t0, 2), "canaries": report["canaries"],
                        "reason": report.get("reason"), "canary_details": report.get("canary_details"),
                        "versions_before": sorted({str(v) for v in before.values()}),
                        "versions_after": sorted({str(v) for v in after.values()}),
                        "all_on_new": all(v == version for v in after.values() if v is not None),
                        "pending": report.get("pending", []),
                        "unchanged": after == before})
    return out


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--kills", type=int, default=100, help="SIGKILL trials during installs (default 100)")
    ap.add_argument("--devices", type=int, default=6, help="simulated devices (default 6)")
    ap.add_argument("--rounds", type=int, default=2, help="fleet rounds with fresh fleets and seeds (default 2)")
    ap.add_argument("--soak", type=float, default=3.0, help="soak seconds per canary phase (default 3)")
    a = ap.parse_args()
    load_before = load()
    with tempfile.TemporaryDirectory(prefix="ember-bench-rollout-") as d:
        tmp = Path(d)
        kills = install_kill_trials(a.kills, seed=0, workdir=tmp / "kills",
                                    progress=lambda r: tqdm(r, desc="SIGKILL during installs", unit="kill"))
        bad = corpus(tmp / "corpus")
        rounds = []
        for r in tqdm(range(a.rounds), desc="simulated fleet rounds", unit="round"):
            rounds.append(fleet_round(tmp / f"fleet{r}", a.devices, seed=r, soak_s=a.soak))
    deployments = [d for rnd in rounds for d in rnd]
    good = [d for d in deployments if d["kind"] == "good"]
    badc = [d for d in deployments if d["kind"] != "good"]
    result = {
        "install_kills": kills["trials"], "bricked": kills["bricked"], "kills_interrupting_an_install":
        kills["interrupted"], "kill_problems": kills["problems"],
        "bad_bundles": bad["bad_bundles"], "bad_bundles_refused": bad["refused"],
        "bad_bundles_reason_as_expected": bad["as_expected"], "bad_bundles_accepted": bad["accepted"],
        "good_bundle_accepted": bad["good_accepted"],
        "good_candidate_promoted": all(d["phase"] == "done" and d["all_on_new"] for d in good),
        "bad_candidate_rolled_back": all(d["phase"] == "rolled_back" and d["unchanged"] for d in badc),
        "offline_device_caught_up": all(d.get("offline_caught_up") for d in good),
        "offline_catch_up_s": [d.get("offline_catch_up_s") for d in good],
        "fleet": {"devices": a.devices, "rounds": a.rounds, "canary": "25%", "soak_s": a.soak,
                  "deployments": deployments},
    }
    write_result("rollout", result, load_before)


if __name__ == "__main__":
    main()
