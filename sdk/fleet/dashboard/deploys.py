"""Deploying from the dashboard: ``POST /api/deploy`` takes a signed bundle (the request body) and runs
the same ``FleetController`` as ``ember fleet deploy`` in a background thread, one deployment at a
time. Its steps reach the page through ``FleetState.deployments`` like any other deployment.

The bundle is kept in a temporary folder of the server and given to the devices over the dashboard's
own HTTP(S) under an unguessable path (``/bundles/<random>/<name>``), or as MQTT chunks
(``delivery=mqtt``), or devices fetch it from ``url`` (your server, the same bytes: devices check the
sha256 taken from the upload). Devices verify the signature; the dashboard only reads the version.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from sdk.errors import ConfigError, EmberError
from sdk.fleet.dashboard.live import DEVICE_ID, LiveFleet
from sdk.rollout.canary import Limits, parse_canary
from sdk.rollout.deploy import DeploySpec, FleetController, bundle_version, new_id

MAX_UPLOAD = 256 << 20  # the device agent's default max_bundle_bytes
NAME_OK = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"
FLOATS = {"soak_s": (0.0, 7 * 86400.0), "baseline_s": (0.0, 3600.0), "step_timeout_s": (1.0, 86400.0),
          "max_p95_ratio": (1e-3, 1e3), "max_p95_ms": (0.0, 1e6)}
OPTIONS = {"canary", "url", "delivery", "devices", "max_errors", "max_drift", "name", *FLOATS}


class DeployRefused(ConfigError):
    """A deploy request the dashboard will not start; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def spec_from(options: dict[str, str], bundle: Path, base_url: str, path: str) -> tuple[DeploySpec, str]:
    """A ``DeploySpec`` from the request's options (FleetController's defaults for what is not given);
    returns it and the URL devices download from (or ``mqtt-chunks``)."""
    unknown = sorted(set(options) - OPTIONS)
    if unknown:
        raise DeployRefused(f"unknown option(s) {unknown}: use {sorted(OPTIONS)}")
    nums: dict[str, float] = {}
    for k, (lo, hi) in FLOATS.items():
        if options.get(k, "") != "":
            try:
                nums[k] = float(options[k])
            except ValueError:
                raise DeployRefused(f"{k} {options[k]!r} is not a number") from None
            if not lo <= nums[k] <= hi:
                raise DeployRefused(f"{k} {nums[k]:g} is outside {lo:g}..{hi:g}")
    canary = options.get("canary") or DeploySpec.canary
    parse_canary(canary)
    devices = options.get("devices", "").replace(",", " ").split()
    if any(not DEVICE_ID.match(d) for d in devices):
        raise DeployRefused(f"devices {devices}: device ids are letters, digits, _ . : -")
    limits = Limits(**{k: nums[k] for k in ("max_p95_ratio", "max_p95_ms") if k in nums},
                    **({"max_drift": options["max_drift"]} if options.get("max_drift") else {}),
                    **({"max_errors": _int(options["max_errors"], "max_errors")} if options.get("max_errors") else {}))
    delivery = options.get("delivery") or "http"
    url = options.get("url") or None
    if url is None and delivery not in ("http", "mqtt"):
        raise DeployRefused(f"delivery {delivery!r}: use http (served by the dashboard) or mqtt (chunks)")
    if url is not None and not url.lower().startswith(("http://", "https://")):
        raise DeployRefused(f"url {url[:80]!r}: devices download only http:// or https:// URLs")
    if url is None and delivery == "http":
        url = base_url.rstrip("/") + path
    version = bundle_version(bundle)
    spec = DeploySpec(bundle, devices=devices, canary=canary, url=url, limits=limits,
                      deployment=new_id(version), version=version,
                      **{k: v for k, v in nums.items() if k in ("soak_s", "baseline_s", "step_timeout_s")})
    return spec, url or "mqtt-chunks"


def _int(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise DeployRefused(f"{name} {text!r} is not a whole number") from None


class Deployer:
    """Keeps uploaded bundles (served under ``/bundles/<key>/<name>``) and runs one deployment at a time."""

    def __init__(self, live: LiveFleet, max_upload: int = MAX_UPLOAD) -> None:
        self.live, self.max_upload = live, max_upload
        self.dir = Path(tempfile.mkdtemp(prefix="ember-dash-bundles-"))
        self.files: dict[str, Path] = {}  # key → file
        self.job: dict[str, Any] = {}     # the last deployment started here: id, running, phase, error
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def new_file(self, name: str) -> tuple[str, Path]:
        """A fresh unguessable key and the path to write the upload to."""
        safe = "".join(c if c in NAME_OK else "_" for c in Path(name or "model.bundle").name)[:80] or "model.bundle"
        key = secrets.token_urlsafe(24)
        folder = self.dir / key
        folder.mkdir()
        return key, folder / safe

    def bundle(self, key: str, name: str) -> Path | None:
        path = self.files.get(key)
        return path if path is not None and path.name == name and path.is_file() else None

    def start(self, key: str, path: Path, options: dict[str, str], base_url: str) -> dict[str, Any]:
        """Check the request and start the controller thread; raises ``DeployRefused`` / ``ConfigError``."""
        with self._lock:
            if self.running:
                raise DeployRefused(f"deployment {self.job.get('deployment')} is still running; wait for it "
                                    "to finish (one deployment at a time)", 409)
            spec, url = spec_from(options, path, base_url, f"/bundles/{key}/{path.name}")
            with self.live.lock:
                online = [v.device for v in self.live.state.rows() if v.online and not v.device.startswith("_")]
            if not online:
                raise DeployRefused(f"no devices online in fleet {self.live.settings.fleet!r}: nothing to deploy to",
                                    409)
            self.files[key] = path
            self.job = {"deployment": spec.deployment, "version": spec.version, "url": url, "running": True,
                        "phase": "starting", "error": None, "bundle": path.name, "size": path.stat().st_size}
            self._thread = threading.Thread(target=self._run, args=(spec,), name="ember-dash-deploy", daemon=True)
            self._thread.start()
            return dict(self.job)

    def _run(self, spec: DeploySpec) -> None:
        try:
            with FleetController(self.live.settings, discover_s=0.5) as fc:
                report = fc.deploy(spec)
            self._finish(phase=report["phase"], reason=report.get("reason"))
        except EmberError as e:
            self._finish(phase="failed", error=str(e))
        except Exception as e:  # noqa: BLE001 - a thread: the page shows it instead of a lost traceback
            self._finish(phase="failed", error=f"{type(e).__name__}: {e}")

    def _finish(self, **job: Any) -> None:
        self.job = {**self.job, **job, "running": False}
        self.live.touch()

    def status(self) -> dict[str, Any]:
        return dict(self.job)

    def close(self) -> None:
        """Remove the uploads (a deployment still running is a daemon thread: it ends with the process)."""
        shutil.rmtree(self.dir, ignore_errors=True)

