"""The fleet controller behind ``ember fleet deploy`` and ``ember fleet rollback``.

    with FleetController(TelemetrySettings(broker="mqtt://hub:1883", fleet="shop")) as fc:
        report = fc.deploy(DeploySpec("det-1.2.0.bundle", canary="10%", soak_s=600,
                                      limits=Limits(max_p95_ratio=1.3)))
        report["phase"]      # "done" or "rolled_back"

Steps: choose the canary group (online devices first), measure their baseline, send ``deploy`` to
them (bundle by ``url`` or as MQTT chunks), wait until each has shadow-tested and promoted, watch
their telemetry for ``soak_s`` against the limits, then widen to everyone else. A canary that
refuses, fails its shadow test or regresses rolls the whole canary group back. Every step is
published on ``ember/<fleet>/_deploy/events`` with the deployment id (``FleetState.deployments``);
devices offline meanwhile get the command when they reconnect (their MQTT session keeps it).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from sdk.errors import ConfigError, TelemetryError
from sdk.fleet.state import DEPLOY_DEVICE, FleetState
from sdk.fleet.watch import FleetSubscriber
from sdk.rollout import bundle as bundles
from sdk.rollout.canary import CanaryWatch, Limits, check, pick_canaries
from sdk.rollout.fetch import chunk_messages
from sdk.telemetry.commands import MQTT_CHUNKS
from sdk.telemetry.settings import TelemetrySettings

FINAL = {"promoted", "discarded", "rejected", "failed", "rolled_back"}
Progress = Callable[[str], None]


@dataclass
class DeploySpec:
    """One deployment. ``url``: where devices download the bundle (None: MQTT chunks)."""

    bundle: str | Path
    devices: Sequence[str] = ()          # empty: every device the broker knows in the fleet
    canary: str = "10%"
    url: str | None = None
    soak_s: float = 60.0
    baseline_s: float = 5.0
    step_timeout_s: float = 300.0        # per phase: download + verify + shadow test
    shadow: dict[str, float] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    deployment: str = ""
    version: str = ""                    # default: read from the bundle's header
    chunk_bytes: int = 64 * 1024
    seed: int | None = None


def new_id(prefix: str) -> str:
    """A deployment id: ``<prefix>-<UTC time>-<4 random hex>`` (unique even within one second)."""
    return f"{prefix}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{secrets.token_hex(2)}"


def bundle_version(path: Path) -> str:
    """The version named in a bundle's (signed) header, read without verifying: devices verify."""
    try:
        with open(path, "rb") as f:
            head = f.read(bundles.PREFIX)
            if len(head) < bundles.PREFIX or not head.startswith(bundles.MAGIC):
                raise ValueError("not an Ember bundle")
            (n,) = struct.unpack(">I", head[-4:])
            version = json.loads(f.read(min(n, bundles.MAX_HEADER)))["version"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{path}: cannot read the bundle's version ({e}); pack it with 'ember models pack' "
                          "or give --version") from None
    if not isinstance(version, str):
        raise ConfigError(f"{path}: the bundle header's version is not a string; give --version")
    return version


class FleetController:
    """An MQTT client that sends rollout commands and follows the fleet (``state``, ``watch``)."""

    def __init__(self, settings: TelemetrySettings, progress: Progress | None = None, poll_s: float = 0.1,
                 discover_s: float = 1.0, bars: bool = False) -> None:
        self.s = settings
        self.discover_s = discover_s  # time to collect the devices' retained status messages
        self.state = FleetState(settings.fleet)
        self.watch = CanaryWatch()
        self.progress = progress or (lambda line: None)
        self.bars = bars  # tqdm bars while waiting for devices and during the soak (the CLI)
        self.poll_s = poll_s
        self.listeners: list[Callable[[str, bytes], None]] = []  # also given every fleet message
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._sub = FleetSubscriber(settings, self._on_message, client_id=f"ember-deploy-{time.time_ns()}")

    def __enter__(self) -> FleetController:  # noqa: PYI034
        self._sub.start()
        self._started = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self._sub.stop()

    def _on_message(self, topic: str, payload: bytes) -> None:
        with self._lock:
            self.state.apply(topic, payload)
        self.watch.feed(topic, payload)
        for fn in self.listeners:
            fn(topic, payload)

    # -- queries -----------------------------------------------------------------------------------
    def devices(self) -> dict[str, bool]:
        """Known devices (from their retained status) → online; waits ``discover_s`` after connecting."""
        time.sleep(max(0.0, self._started + self.discover_s - time.monotonic()))
        with self._lock:
            return {d.device: bool(d.online) for d in self.state.rows()}

    def steps(self, deployment: str) -> dict[str, str]:
        with self._lock:
            d = self.state.deployments.get(deployment)
            return dict(d.devices) if d else {}

    def details(self, deployment: str) -> dict[str, dict[str, Any]]:
        """Per device: its last shadow report and any refusal reason or error."""
        with self._lock:
            d = self.state.deployments.get(deployment)
            return {k: dict(v) for k, v in d.details.items()} if d else {}

    # -- commands ----------------------------------------------------------------------------------
    def send(self, device: str, cmd: dict[str, Any]) -> None:
        """Publish one command (QoS 1) and wait for the broker to take it; TelemetryError otherwise."""
        self._publish([(f"ember/{self.s.fleet}/{device}/cmd", json.dumps(cmd))])

    def send_chunks(self, devices: Sequence[str], deployment: str, data: bytes, chunk_bytes: int) -> None:
        messages = [json.dumps(m) for m in chunk_messages(data, chunk_bytes, deployment=deployment)]
        for dev in devices:
            self._publish([(f"ember/{self.s.fleet}/{dev}/bundle/{deployment}", m) for m in messages])

    def _publish(self, messages: Sequence[tuple[str, str]], timeout: float = 30.0) -> None:
        infos = [self._sub.client.publish(topic, payload, qos=1) for topic, payload in messages]
        try:
            for info in infos:
                info.wait_for_publish(timeout)
        except (RuntimeError, ValueError) as e:
            raise TelemetryError(f"cannot send to {messages[0][0]}: {e} (is the broker {self.s.broker} up?)") from None
        if not all(i.is_published() for i in infos):
            raise TelemetryError(f"broker {self.s.broker} did not acknowledge the messages to {messages[0][0]} "
                                 f"within {timeout:g} s")

    def step(self, deployment: str, phase: str, message: str, **data: Any) -> None:
        """Publish one controller step (and print it)."""
        self.progress(f"[{deployment}] {phase}: {message}")
        body = {"kind": f"deploy.{phase}", "ts": time.time(),
                "data": {"deployment": deployment, "phase": phase, "message": message, **data}}
        self._sub.client.publish(f"ember/{self.s.fleet}/{DEPLOY_DEVICE}/events", json.dumps(body), qos=1)

    def wait(self, deployment: str, devices: Sequence[str], timeout: float, final: set[str] = FINAL) -> dict[str, str]:
        """Wait until each device reports a final rollout step (or ``timeout``); returns device → step."""
        deadline = time.monotonic() + timeout
        with tqdm(total=len(devices), desc="devices answered", unit="dev", disable=not self.bars, leave=False) as bar:
            while True:
                steps = self.steps(deployment)
                bar.update(sum(steps.get(d) in final for d in devices) - bar.n)
                if all(steps.get(d) in final for d in devices) or time.monotonic() >= deadline:
                    return {d: steps.get(d, "no answer") for d in devices}
                time.sleep(self.poll_s)

    # -- deploy --------------------------------------------------------------------------------------
    def deploy(self, spec: DeploySpec) -> dict[str, Any]:
        """Run a whole deployment (canary → soak → widen, or roll back); returns its report."""
        path = Path(spec.bundle)
        if not path.is_file():
            raise ConfigError(f"bundle {path} not found: make one with 'ember models pack DIR --key KEY'")
        data = path.read_bytes()
        version = spec.version or bundle_version(path)
        dep = spec.deployment or new_id(version)
        known = self.devices()
        targets = sorted(spec.devices) or sorted(known)
        unknown = [d for d in targets if d not in known]
        online = [d for d in targets if known.get(d)]
        canaries = pick_canaries(online or targets, spec.canary, spec.seed)
        rest = [d for d in targets if d not in canaries]
        cmd = {"cmd": "deploy", "deployment": dep, "version": version, "sha256": hashlib.sha256(data).hexdigest(),
               "size": len(data), "url": spec.url or MQTT_CHUNKS, "shadow": spec.shadow}
        report: dict[str, Any] = {"deployment": dep, "version": version, "canaries": canaries, "rest": rest,
                                  "unknown": unknown, "limits": spec.limits.as_dict()}
        self.step(dep, "baseline", f"version {version} to {len(targets)} devices; canaries {canaries}; "
                  f"measuring their baseline for {spec.baseline_s:g} s", version=version, canaries=canaries,
                  targets=targets)
        t0 = time.time()
        time.sleep(spec.baseline_s)
        baseline = self.watch.summary(canaries, since=t0, version=None)
        report["baseline"] = baseline
        self.step(dep, "canary", f"sending to {len(canaries)} canaries", version=version)
        self._send_deploy(canaries, {**cmd, "canary": True}, data, spec)
        got = self.wait(dep, canaries, spec.step_timeout_s)
        report["canary_steps"] = got
        report["canary_details"] = self.details(dep)
        bad = {d: s for d, s in got.items() if s != "promoted"}
        if bad:
            return self._roll_back(dep, version, canaries, report, f"canaries did not promote: {bad}", spec)
        self.step(dep, "soak", f"canaries promoted; watching them for {spec.soak_s:g} s", version=version)
        t1 = time.time()
        problems = self._soak(canaries, t1, version, baseline, spec)
        report["soak"] = self.watch.summary(canaries, since=t1, version=version)
        if problems:
            return self._roll_back(dep, version, canaries, report, "; ".join(problems), spec)
        if rest:
            self.step(dep, "widening", f"sending to {len(rest)} more devices", version=version)
            self._send_deploy(rest, cmd, data, spec)
            report["rest_steps"] = self.wait(dep, [d for d in rest if known.get(d)], spec.step_timeout_s)
        steps = self.steps(dep)
        pending = [d for d in rest if d not in steps or steps[d] not in FINAL]
        report.update(phase="done", promoted=sorted(d for d, s in steps.items() if s == "promoted"), pending=pending,
                      not_promoted={d: s for d, s in steps.items() if s in FINAL - {"promoted"}},
                      details=self.details(dep))
        self.step(dep, "done", f"{len(report['promoted'])} devices on {version}"
                  + (f"; {len(pending)} offline or pending (they get it when they connect)" if pending else ""),
                  version=version)
        return report

    def _send_deploy(self, devices: Sequence[str], cmd: dict[str, Any], data: bytes, spec: DeploySpec) -> None:
        if cmd["url"] == MQTT_CHUNKS:
            self.send_chunks(devices, cmd["deployment"], data, spec.chunk_bytes)
        for d in devices:
            self.send(d, cmd)

    def _soak(self, canaries: Sequence[str], since: float, version: str, baseline: dict[str, Any],
              spec: DeploySpec) -> list[str]:
        end = time.monotonic() + spec.soak_s
        with tqdm(total=round(spec.soak_s), desc="soak", unit="s", disable=not self.bars, leave=False) as bar:
            while (left := end - time.monotonic()) > 0:
                time.sleep(min(left, max(self.poll_s, 0.25)))
                bar.update(round(spec.soak_s - max(0.0, end - time.monotonic())) - bar.n)
                last = time.monotonic() >= end  # at the end a canary without telemetry is a regression too
                problems = check(self.watch.summary(canaries, since=since, version=version), baseline,
                                 spec.limits, final=last)
                if problems:
                    return problems
        return []

    def _roll_back(self, dep: str, version: str, canaries: Sequence[str], report: dict[str, Any], why: str,
                   spec: DeploySpec) -> dict[str, Any]:
        self.step(dep, "rolling_back", f"{why}; rolling the canaries back", version=version, reason=why)
        steps = self.steps(dep)
        for d in canaries:
            promoted = steps.get(d) == "promoted"
            self.send(d, {"cmd": "rollback", "deployment": dep} if promoted else {"cmd": "discard", "deployment": dep})
        promoted = [d for d in canaries if steps.get(d) == "promoted"]
        back = self.wait(dep, promoted, spec.step_timeout_s, final={"rolled_back"}) if promoted else {}
        report.update(phase="rolled_back", reason=why, rolled_back=sorted(back))
        self.step(dep, "rolled_back", f"canaries back on their previous version ({why})", version=version,
                  reason=why)
        return report

    # -- manual rollback -------------------------------------------------------------------------------
    def rollback(self, devices: Sequence[str] = (), to: str | None = None, deployment: str = "",
                 timeout: float = 60.0) -> dict[str, Any]:
        """Send ``rollback`` (to the previous version, or ``to``) and wait for the devices' answers."""
        known = self.devices()
        targets = sorted(devices) or sorted(known)
        if not targets:
            raise TelemetryError(f"no devices known in fleet {self.s.fleet!r} on {self.s.broker}")
        dep = deployment or new_id("rollback")
        self.step(dep, "rolling_back", f"manual rollback of {len(targets)} devices" + (f" to {to}" if to else ""),
                  targets=targets, version=to)
        cmd: dict[str, Any] = {"cmd": "rollback", "deployment": dep, **({"to": to} if to else {})}
        for d in targets:
            self.send(d, cmd)
        got = self.wait(dep, [d for d in targets if known.get(d)], timeout)
        self.step(dep, "rolled_back", f"{sum(s == 'rolled_back' for s in got.values())}/{len(targets)} devices "
                  "rolled back", version=to)
        return {"deployment": dep, "phase": "rolled_back", "steps": got,
                "offline": [d for d in targets if not known.get(d)]}
