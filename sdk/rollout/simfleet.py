"""A simulated fleet for rollout tests and ``bench/rollout.py``: N devices, each a real ``Telemetry``
link to a broker, a real ``VersionStore`` in a folder of its own and a ``DeviceAgent`` running a
real ONNX Runtime model on generated inputs.

    folder = sim_model(tmp / "v1", "1.0.0")                   # a 16 → 4 classifier
    with SimFleet(broker.url, 4, tmp / "fleet", folder, [public_key]) as fleet:
        fleet.devices[0].stop(); fleet.devices[0].start()    # offline and back

Models: ``sim_model(..., slow=40)`` adds 40 256×256 matrix products whose result is multiplied by
zero (same outputs, slower); ``swap=True`` permutes the classes (outputs disagree).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sdk.events import EventBus
from sdk.models.manifest import Manifest
from sdk.rollout.agent import DeviceAgent
from sdk.rollout.settings import RolloutSettings
from sdk.rollout.versions import VersionStore
from sdk.telemetry.core import Telemetry
from sdk.telemetry.settings import TelemetrySettings

N_IN, N_OUT, WIDE = 16, 4, 256
LABELS = ["person", "car", "bike", "none"]


def sim_onnx(path: str | Path, seed: int = 0, slow: int = 0, swap: bool = False) -> Path:
    """Write a small softmax classifier; ``slow`` extra wide layers, ``swap`` permutes the classes."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = rng.normal(0, 1, (N_IN, N_OUT)).astype(np.float32)
    if swap:
        w = w[:, [1, 2, 3, 0]]
    inits = [numpy_helper.from_array(w, "W")]
    nodes = [helper.make_node("MatMul", ["x", "W"], ["logits0"])]
    last = "logits0"
    if slow:
        inits += [numpy_helper.from_array(rng.normal(0, 0.05, (N_IN, WIDE)).astype(np.float32), "A"),
                  numpy_helper.from_array(rng.normal(0, 0.06, (WIDE, WIDE)).astype(np.float32), "B"),
                  numpy_helper.from_array(np.zeros((1,), np.float32), "zero")]
        nodes.append(helper.make_node("MatMul", ["x", "A"], ["h0"]))
        for i in range(slow):
            nodes += [helper.make_node("MatMul", [f"h{i}", "B"], [f"m{i}"]),
                      helper.make_node("Tanh", [f"m{i}"], [f"h{i + 1}"])]
        nodes += [helper.make_node("ReduceSum", [f"h{slow}"], ["s"], keepdims=1),
                  helper.make_node("Mul", ["s", "zero"], ["z"]), helper.make_node("Add", ["logits0", "z"], ["l1"])]
        last = "l1"
    nodes.append(helper.make_node("Softmax", [last], ["probs"], axis=-1))
    graph = helper.make_graph(nodes, "sim", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, N_IN])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, N_OUT])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def sim_model(folder: str | Path, version: str, seed: int = 0, slow: int = 0, swap: bool = False) -> Path:
    """A model folder (manifest + fp32 ONNX variant) of ``version``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sim_onnx(folder / "model.fp32.onnx", seed, slow, swap)
    m = Manifest(name="sim", task="classification", labels=LABELS,
                 input={"name": "x", "shape": [1, N_IN], "layout": "NC", "dtype": "float32"},
                 output={"decoder": "softmax", "names": ["probs"]})
    m.version = version
    m.add_variant("fp32", "model.fp32.onnx", "onnxruntime", folder=folder)
    m.save(folder)
    return folder


class SimDevice:
    """One device: a thread that runs ``fps`` frames a second through its agent and reports telemetry
    (fps, latency p50/p95, model version, errors, ``metrics.detection_rate`` = share of frames whose
    top class is not "none") every ``report_s``. Latency here is the frame's CPU time in this thread
    (ONNX Runtime runs single-threaded in it), so a busy shared test machine, where threads wait
    for a core, does not look like a slower model; a real device reports wall-clock latency."""

    def __init__(self, name: str, broker: str, fleet: str, root: Path, keys: Sequence[Any], fps: float = 40.0,
                 report_s: float = 0.25, seed: int = 0, agent_settings: RolloutSettings | None = None) -> None:
        self.name, self.root, self.keys = name, root, list(keys)
        self.fps, self.report_s = fps, report_s
        self.settings = TelemetrySettings(broker=broker, fleet=fleet, device_id=name, spool=str(root / "spool.db"),
                                          reconnect_min_s=0.1, reconnect_max_s=0.5).finish()
        self.agent_settings = agent_settings or RolloutSettings(shadow_frames=30, report_every=10)
        self.rng = np.random.default_rng(seed)
        self.frames = 0
        self.tel: Telemetry | None = None
        self.agent: DeviceAgent | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def install(self, folder: Path) -> None:
        """The factory install: ``folder`` becomes the active version (no bundle, no keys needed), unless
        the device already has one (a fleet folder reused: devices keep their versions)."""
        store = VersionStore(self.root / "models", emit=lambda *a, **k: None)
        if store.active_version() is None:
            store.install(folder)

    def start(self, wait: bool = True) -> SimDevice:
        bus = EventBus()
        self.tel = Telemetry(self.settings, kind="image", bus=bus, device_state=lambda: {"cpu_percent": 10.0})
        self.agent = DeviceAgent(self.tel, self.root / "models", self.keys, settings=self.agent_settings,
                                 workdir=self.root / "agent").start()
        self.tel.start()
        if wait:
            self.tel.wait_connected(10)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"sim-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Go offline (clean disconnect; the broker keeps the session and queues commands)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        if self.agent is not None:
            self.agent.close()
        if self.tel is not None:
            self.tel.close(flush_timeout=2.0)
        self.agent = self.tel = None

    @property
    def version(self) -> str | None:
        return self.agent.version if self.agent else None

    def _run(self) -> None:
        assert self.agent is not None and self.tel is not None
        period = 1.0 / self.fps
        lat: list[float] = []
        hits = 0
        last = time.monotonic()
        while not self._stop.is_set():
            t0, c0 = time.perf_counter(), time.thread_time()
            x = self.rng.normal(0, 1, (1, N_IN)).astype(np.float32)
            try:
                out = self.agent(x)
                hits += int(np.argmax(out[0]) != N_OUT - 1)
            except Exception:  # noqa: BLE001, S112 - counted by the agent (errors), the device keeps running
                continue
            lat.append((time.thread_time() - c0) * 1e3)
            self.frames += 1
            now = time.monotonic()
            if now - last >= self.report_s and lat:
                self.tel.publish_telemetry(fps=round(len(lat) / (now - last), 1),
                                           latency_p50_ms=round(float(np.percentile(lat, 50)), 4),
                                           latency_p95_ms=round(float(np.percentile(lat, 95)), 4),
                                           metrics={"detection_rate": round(hits / len(lat), 3)},
                                           **self.agent.telemetry_extra())
                lat, hits, last = [], 0, now
            self._stop.wait(max(0.0, period - (time.perf_counter() - t0)))


class SimFleet:
    """``n`` ``SimDevice``s named ``sim000``… under ``root``, all installed with ``folder``."""

    def __init__(self, broker: str, n: int, root: str | Path, folder: Path, keys: Sequence[Any],
                 fleet: str = "sim", **device_kwargs: Any) -> None:
        self.root = Path(root)
        self.fleet = fleet
        self.devices = [SimDevice(f"sim{i:03d}", broker, fleet, self.root / f"sim{i:03d}", keys, seed=i,
                                  **device_kwargs) for i in range(n)]
        for d in self.devices:
            d.install(folder)

    def __enter__(self) -> SimFleet:  # noqa: PYI034
        for d in self.devices:
            d.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for d in self.devices:
            if d.tel is not None:
                d.stop()

    def versions(self) -> dict[str, str | None]:
        return {d.name: d.version for d in self.devices}


@contextlib.contextmanager
def serve_folder(folder: str | Path) -> Iterator[str]:
    """Serve ``folder`` over HTTP on a free loopback port (tests, bench); yields the base URL.
    In production the bundle comes from your own (HTTPS) server: ``ember fleet deploy --url``."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="ember-bundle-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


DEMO_RELEASES = {"1.1.0": {}, "1.2.0": {"swap": True}, "1.3.0": {"slow": 600}}  # good, disagreeing, slow


def prepare_demo(folder: str | Path) -> dict[str, Path]:
    """A folder to try rollouts with: a signing key pair, the factory model (1.0.0) and signed bundles
    of a good release (1.1.0), a disagreeing one (1.2.0) and a slow one (1.3.0). Kept if present."""
    from sdk.rollout.bundle import keygen, pack

    folder = Path(folder)
    key, pub = folder / "keys" / "signing.key", folder / "keys" / "signing.pub"
    if not key.exists():
        keygen(key, pub)
    out = {"key": key, "public_key": pub, "factory": folder / "models" / "1.0.0"}
    if not (out["factory"] / "manifest.json").exists():
        sim_model(out["factory"], "1.0.0")
    for version, kind in DEMO_RELEASES.items():
        bundle = folder / f"sim-{version}.bundle"
        if not bundle.exists():
            pack(sim_model(folder / "models" / version, version, **kind), key, bundle)
        out[version] = bundle
    return out


def run_demo(broker: str, folder: str | Path, devices: int = 6, fleet: str = "sim", duration_s: float = 600.0,
             progress: bool = True) -> dict[str, Any]:
    """Run a ``SimFleet`` on ``prepare_demo(folder)`` until ``duration_s`` or Ctrl-C; returns the versions."""
    from tqdm import tqdm

    demo = prepare_demo(folder)
    with SimFleet(broker, devices, Path(folder) / "fleet", demo["factory"], [demo["public_key"]], fleet=fleet) as fl:
        bar = tqdm(total=int(duration_s), desc=f"{devices} rollout-ready devices", unit="s", disable=not progress)
        try:
            for _ in range(int(duration_s)):
                time.sleep(1.0)
                bar.update(1)
                bar.set_postfix_str(" ".join(sorted({str(v) for v in fl.versions().values()})))
        except KeyboardInterrupt:
            pass
        finally:
            bar.close()
        return fl.versions()
