"""The device agent: receives deployments over the device's telemetry link, verifies, stages,
shadow-tests and promotes model versions, and serves the active one without restarting the app.

    tel = Telemetry.from_config(config)
    agent = DeviceAgent(tel, "/var/lib/ember/models/det", trusted_keys=["/etc/ember/keys/fleet.pub"])
    # or DeviceAgent.from_config(tel, config): the [rollout] section (sdk/rollout/settings.py)
    agent.start()                      # before tel.start(): registers deploy/promote/rollback/discard
    tel.start()
    outputs = agent(frame)             # the active version; a candidate under test runs beside it

Commands (``sdk.telemetry.commands``) are handled in one worker thread, never in the MQTT thread.
Every step is an event on the telemetry bus (so on ``ember/<fleet>/<device>/events``) carrying the
deployment id: ``rollout.received``, ``.downloaded``, ``.shadow`` (agreement, candidate p50/p95,
errors, output drift), ``.failed`` from here; ``.rejected`` (with the reason), ``.staged``,
``.promoted``, ``.discarded``, ``.rolled_back`` from the ``VersionStore``. Public keys are configured
here, on the device (``[rollout] trusted_keys``), never over MQTT.
"""

from __future__ import annotations

import json
import logging
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from sdk.errors import ConfigError, EmberError, FetchError, RolloutError, RolloutRejected
from sdk.rollout.common import reject
from sdk.rollout.fetch import ChunkAssembler, download
from sdk.rollout.settings import RolloutSettings
from sdk.rollout.shadow import ShadowCriteria, ShadowTest
from sdk.rollout.versions import VersionStore
from sdk.telemetry.commands import MQTT_CHUNKS
from sdk.telemetry.core import Telemetry

log = logging.getLogger(__name__)
MAX_CHUNK_MESSAGE = 1 << 20  # one MQTT chunk message (chunk_messages makes ~64 KiB ones)


class Model(Protocol):
    def __call__(self, x: Any) -> Any: ...
    def close(self) -> None: ...


Loader = Callable[[Path], Model]


class _Shadow:
    """A candidate under test: ``ShadowTest`` picks the frames; this keeps it within the CPU share."""

    def __init__(self, deployment: str, version: str, model: Model, test: ShadowTest, cpu_budget: float) -> None:
        self.deployment, self.version, self.model, self.test = deployment, version, model, test
        self.cpu_budget = cpu_budget
        self.started = time.monotonic()
        self.busy_s = 0.0
        self.done = threading.Event()
        self.interrupted = False  # a command arrived: it decides instead of the test

    def maybe_run(self, x: Any, active_out: Any, active_ms: float) -> None:
        if self.done.is_set():
            return
        if self.busy_s / max(time.monotonic() - self.started, 1e-3) > self.cpu_budget:
            self.test.skipped_budget += 1  # over the CPU share: this frame is not shadowed
            return
        t0 = time.perf_counter()
        self.test.observe(x, active_out, active_ms)
        self.busy_s += time.perf_counter() - t0
        cr = self.test.criteria
        if (self.test.frames >= cr.min_frames or self.test.errors > cr.max_errors) and \
                self.test.decision() != "pending":
            self.done.set()


class DeviceAgent:
    """Model rollout on one device; call it like the model (``agent(x) -> outputs``)."""

    def __init__(self, telemetry: Telemetry, root: str | Path, trusted_keys: Sequence[Any],
                 load: Loader | None = None, settings: RolloutSettings | None = None,
                 workdir: str | Path | None = None) -> None:
        settings = settings or RolloutSettings()
        self.tel = telemetry
        self.bus = telemetry.bus
        self.keys = list(trusted_keys)
        self._current: str | None = None  # the deployment being worked on
        self.versions = VersionStore(root, emit=self._emit)
        self.load = load or self._load_manager
        self.s = settings
        self.workdir = Path(workdir or settings.workdir or tempfile.mkdtemp(prefix="ember-agent-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.errors = 0
        self._model: Model | None = None
        self._shadow: _Shadow | None = None
        self._chunks: dict[str, tuple[ChunkAssembler, threading.Event]] = {}
        self._chunk_lock = threading.Lock()
        self._frame = threading.Lock()
        self._tasks: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_config(cls, telemetry: Telemetry, config: Mapping[str, Any] | None = None,
                    load: Loader | None = None, **overrides: Any) -> DeviceAgent:
        """An agent set from the ``[rollout]`` section (``store``, ``trusted_keys``, limits)."""
        s = RolloutSettings.from_config(config, **overrides)
        if not s.store:
            raise ConfigError("rollout.store: set the folder of this device's model versions, "
                              "e.g. /var/lib/ember/models/det")
        if not s.trusted_keys:
            raise ConfigError("rollout.trusted_keys: list the public key files (.pub from 'ember models keygen') "
                              "this device accepts bundles from")
        return cls(telemetry, s.store, s.trusted_keys, load=load, settings=s)

    def _load_manager(self, folder: Path) -> Model:
        """The default loader: a ``ModelManager`` on the version's folder (timing trusted from its
        manifest), publishing its tier events on the telemetry bus."""
        from sdk.models.manager import ModelManager

        return ModelManager(folder, measure="never", bus=self.bus)

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> DeviceAgent:
        """Load the active version and take the rollout commands (call before ``telemetry.start()``)."""
        if self.tel.link is not None:
            raise EmberError("start the rollout agent before telemetry.start(): the link subscribes to the "
                             "bundle chunk topic when it connects")
        if self.versions.candidate_version() is not None:  # left from a restart mid-test: test again on redeploy
            self.versions.discard_candidate(reason="agent restarted during the shadow test")
        self._model = self.load(self.versions.active())
        for name in ("deploy", "promote", "rollback", "discard"):
            self.tel.register_handler(name, self._queue(name))
        self.tel.on_bundle = self._on_chunk
        self._thread = threading.Thread(target=self._work, name="ember-rollout-agent", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self._tasks.put(None)
            if self._shadow is not None:
                self._shadow.done.set()
            self._thread.join(10)
            self._thread = None
        for m in (self._model, self._shadow.model if self._shadow else None):
            if m is not None:
                m.close()
        self._model = self._shadow = None

    @property
    def version(self) -> str | None:
        return self.versions.active_version()

    def telemetry_extra(self) -> dict[str, Any]:
        """Fields for ``publish_telemetry``: the active version, a candidate, inference errors."""
        return {"model_version": self.versions.active_version(), "candidate": self.versions.candidate_version(),
                "errors": self.errors}

    # -- per frame ---------------------------------------------------------------------------------
    def __call__(self, x: Any) -> Any:
        with self._frame:  # a swap waits for the frame in flight, so no frame runs on a closed model
            model = self._model
            if model is None:
                raise EmberError("the rollout agent is not started: call agent.start() first")
            t0 = time.perf_counter()
            try:
                out = model(x)
            except Exception:
                self.errors += 1
                raise
            shadow = self._shadow
            if shadow is not None:
                shadow.maybe_run(x, out, (time.perf_counter() - t0) * 1e3)
            return out

    # -- commands ----------------------------------------------------------------------------------
    def _queue(self, name: str) -> Callable[..., dict[str, Any]]:
        def handler(**args: Any) -> dict[str, Any]:
            self._tasks.put((name, args))
            sh = self._shadow
            if sh is not None and not (name == "deploy" and args.get("deployment") == sh.deployment):
                sh.interrupted = True  # promote/discard/rollback/a new deploy acts now, not after the test
                sh.done.set()
            return {"queued": name, "deployment": args.get("deployment")}
        return handler

    def _work(self) -> None:
        while (task := self._tasks.get()) is not None:
            name, args = task
            dep = args.get("deployment")
            try:
                getattr(self, f"_do_{name}")(**args)
            except RolloutRejected:  # published as rollout.rejected where it was raised
                self._cleanup(dep)
            except (EmberError, OSError) as e:
                self._event("failed", dep, args.get("version"), level="error", error=str(e))
                self._cleanup(dep)
            except Exception as e:
                log.exception("rollout %s failed", name)
                self._event("failed", dep, args.get("version"), level="error", error=f"{type(e).__name__}: {e}")
                self._cleanup(dep)

    def _do_deploy(self, deployment: str, version: str, sha256: str, size: int, url: str,
                   shadow: dict[str, float] | None = None, canary: bool = False) -> None:
        if version == self.versions.active_version():
            self._event("promoted", deployment, version, message="already active")
            return
        if deployment == self._current:
            return  # a re-delivered command (QoS 1 after a reconnect)
        if self._shadow is not None:
            self._stop_shadow(discard=True, deployment=self._shadow.deployment, reason=f"superseded by {deployment}")
        self._current = deployment
        self._event("received", deployment, version, canary=canary, size=size,
                    via="mqtt" if url == MQTT_CHUNKS else "http")
        if size > self.s.max_bundle_bytes:
            raise reject(self._emit, "too_large", f"bundle of {size} bytes is over this device's limit of "
                         f"{self.s.max_bundle_bytes} (agent max_bundle_bytes)", deployment=deployment)
        path = self._fetch(deployment, url, sha256, size)
        self._event("downloaded", deployment, version, size=path.stat().st_size)
        self._verify_and_stage(path, version, deployment)
        self._shadow_test(deployment, version, dict(shadow or {}))

    def _fetch(self, deployment: str, url: str, sha256: str, size: int) -> Path:
        dest = self.workdir / f"{deployment}.bundle"
        if url != MQTT_CHUNKS:
            return download(url, dest, sha256=sha256, max_bytes=min(size, self.s.max_bundle_bytes),
                            timeout=self.s.download_timeout_s, retries=self.s.download_retries)
        asm, done = self._assembler(deployment)
        if not done.wait(self.s.download_timeout_s):
            raise FetchError("incomplete", f"deployment {deployment}: chunks {asm.missing()[:10]} of {asm.count} "
                             f"missing after {self.s.download_timeout_s:g} s", resumable=True)
        if asm.sha256 != sha256:
            raise reject(self._emit, "checksum", f"the chunks carry sha256 {str(asm.sha256)[:12]}…, the deploy "
                         f"command {sha256[:12]}…", deployment=deployment)
        return asm.write(dest)

    def _verify_and_stage(self, path: Path, version: str, deployment: str) -> str:
        self.versions.stage_candidate(path, version, trusted_keys=self.keys, deployment=deployment,
                                      max_bytes=self.s.max_bundle_bytes)
        path.unlink(missing_ok=True)
        return version

    def _shadow_test(self, deployment: str, version: str, criteria: dict[str, float]) -> None:
        frames = int(criteria.pop("frames", self.s.shadow_frames))
        fraction = min(float(criteria.pop("fraction", self.s.shadow_fraction)), 1.0)
        budget = min(float(criteria.pop("cpu_budget", self.s.cpu_budget)), self.s.cpu_budget)
        timeout = float(criteria.pop("timeout_s", self.s.shadow_timeout_s))
        if frames <= 0:
            self._promote(deployment, version, reason="no shadow test asked")
            return
        if "max_errors" in criteria:
            criteria["max_errors"] = int(criteria["max_errors"])
        model = self.load(self.versions.candidate())
        test = ShadowTest(self._model, model, fraction=max(fraction, 1e-3),
                          criteria=ShadowCriteria(min_frames=frames, **criteria))
        sh = _Shadow(deployment, version, model, test, budget)
        self._shadow = sh
        deadline = time.monotonic() + timeout
        reported = 0
        while not sh.done.wait(0.2) and time.monotonic() < deadline:
            if test.frames - reported >= self.s.report_every:
                reported = test.frames
                self._event("shadow", deployment, version, final=False, **test.report())
        if self._shadow is not sh or sh.interrupted:
            return  # the queued command (promote, discard, rollback, a new deploy) decides
        report = test.report()
        if report["decision"] == "pending":
            report.update(decision="reject", reasons=[f"timed out after {timeout:g} s ({report['reasons'][0]})"])
        self._event("shadow", deployment, version, final=True, passed=report["decision"] == "promote", **report)
        if report["decision"] == "promote":
            self._stop_shadow(discard=False)
            self._promote(deployment, version, reason="shadow test passed")
        else:
            self._stop_shadow(discard=True, deployment=deployment, reason="; ".join(report["reasons"]))

    def _stop_shadow(self, discard: bool, deployment: str | None = None, reason: str = "") -> None:
        with self._frame:
            sh, self._shadow = self._shadow, None
        if sh is not None:
            sh.done.set()
            sh.model.close()
        if discard and self.versions.candidate_version() is not None:
            self.versions.discard_candidate(reason=reason, deployment=deployment)
        self._current = None

    def _promote(self, deployment: str | None, version: str, reason: str) -> None:
        self._switch(self.versions.path(version), lambda: self.versions.promote(deployment=deployment))
        self._current = None

    def _switch(self, folder: Path, change: Callable[[], Any]) -> None:
        """Load ``folder`` while the old model serves, then ``change`` the store and swap the model
        between two frames (the store's event goes out once the new version serves)."""
        new = self.load(folder)
        try:
            with self._frame:
                change()
                old, self._model = self._model, new
        except BaseException:
            new.close()
            raise
        if old is not None:
            old.close()

    def _do_promote(self, deployment: str) -> None:
        cand = self.versions.candidate_version()
        if cand is None:
            raise EmberError(f"promote {deployment}: no candidate staged on this device")
        self._stop_shadow(discard=False)
        self._promote(deployment, cand, reason="promote command")

    def _do_discard(self, deployment: str) -> None:
        self._stop_shadow(discard=True, deployment=deployment, reason="discard command")

    def _do_rollback(self, deployment: str | None = None, to: str | None = None) -> None:
        self._stop_shadow(discard=True, deployment=deployment, reason="rollback")
        prev = self.versions.previous_version()
        if prev is None:
            raise RolloutError(f"{self.versions.root}: no previous version to roll back to "
                               f"(active: {self.versions.active_version()})")
        self._switch(self.versions.path(prev),
                     lambda: self.versions.rollback(to, deployment=deployment, reason="rollback command"))

    def _cleanup(self, deployment: str | None) -> None:
        """After a failed step: drop this deployment's shadow test, staged candidate and chunks."""
        ours = self._shadow.deployment == deployment if self._shadow is not None else deployment == self._current
        if deployment is not None and ours:
            self._stop_shadow(discard=True, deployment=deployment, reason="failed")
        with self._chunk_lock:
            self._chunks.pop(deployment or "", None)
        self._current = None

    # -- MQTT chunks -------------------------------------------------------------------------------
    def _assembler(self, deployment: str) -> tuple[ChunkAssembler, threading.Event]:
        with self._chunk_lock:
            if deployment not in self._chunks:
                for old in list(self._chunks)[:-1]:  # keep at most two bundles in progress
                    self._chunks.pop(old)
                self._chunks[deployment] = (ChunkAssembler(deployment, max_bytes=self.s.max_bundle_bytes),
                                            threading.Event())
            return self._chunks[deployment]

    def _on_chunk(self, deployment: str, payload: bytes) -> None:
        """Called in the MQTT thread for each ``…/bundle/<deployment>`` message: store and return."""
        try:
            if len(payload) > MAX_CHUNK_MESSAGE:
                raise FetchError("too_big", f"a chunk message of {len(payload)} bytes (at most {MAX_CHUNK_MESSAGE})")
            asm, done = self._assembler(deployment)
            msg = json.loads(payload)
            if not isinstance(msg, dict):
                raise FetchError("chunk_invalid", f"deployment {deployment}: a chunk is not a JSON object")
            if asm.add(msg):
                done.set()
        except (ValueError, UnicodeDecodeError, FetchError) as e:
            self._event("failed", deployment, None, level="error", error=f"bad bundle chunk: {e}")

    # -- events ------------------------------------------------------------------------------------
    def _emit(self, kind: str, **data: Any) -> Any:
        """Every rollout event (the store's too) goes on the telemetry bus with the device's versions."""
        store = getattr(self, "versions", None)
        if store is not None:
            data.setdefault("active", store.active_version())
            data.setdefault("candidate", store.candidate_version())
        if data.get("deployment") is None and self._current is not None:
            data["deployment"] = self._current
        return self.bus.publish(kind, **data)

    def _event(self, step: str, deployment: str | None, version: str | None, **data: Any) -> None:
        self._emit(f"rollout.{step}", deployment=deployment, version=version, **data)
