"""Power-cut test of the version store: a child process installs, promotes, rolls back and discards model
versions in a loop and is SIGKILLed at a random moment; after each kill the store must open and its
active model must load. Used by tests/rollout and bench/rollout.py.

    install_kill_trials(100, seed=0)   # {"trials": 100, "bricked": 0, "interrupted": 96, "versions_seen": 40, ...}
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from sdk.models.manifest import Manifest


def tiny_model_folder(folder: str | os.PathLike[str], version: str = "1.0.0", seed: int = 0,
                      hw: int = 32) -> Path:
    """A model folder with one fp32 ONNX variant of ``sdk.models.builtin.tiny_convnet`` and a manifest."""
    from sdk.models.builtin import tiny_convnet

    folder = Path(folder)
    tiny_convnet(folder / "model.fp32.onnx", input_hw=(hw, hw), seed=seed)
    m = Manifest(name="tiny", labels=[f"c{i}" for i in range(10)], version=version,
                 input={"name": "input", "shape": [1, 3, hw, hw], "layout": "NCHW", "dtype": "float32"},
                 output={"decoder": "softmax", "names": ["probs"]})
    m.add_variant("fp32", "model.fp32.onnx", folder=folder)
    m.save(folder)
    return folder


def _churn(root: Path, src: Path, bundle_key: Path, seed: int) -> None:
    """The child: change the store forever (until killed)."""
    from sdk.rollout.bundle import pack
    from sdk.rollout.versions import VersionStore

    rng = random.Random(seed)
    quiet: Callable[..., None] = lambda *a, **k: None
    store = VersionStore(root, emit=quiet)
    pub = bundle_key.with_suffix(".pub")
    while True:
        installed = [v for v in (store.active_version(), store.previous_version(), store.candidate_version()) if v]
        nxt = f"1.0.{max(int(v.split('.')[2]) for v in installed) + 1}"
        op = rng.random()
        if op < 0.15 and store.previous_version():
            store.rollback(reason="crashtest")
        elif op < 0.25 and store.candidate_version():
            store.discard_candidate(reason="crashtest")
        elif op < 0.6:
            out = root.parent / f"b-{os.getpid()}.bundle"
            store.stage_candidate(pack(src, bundle_key, out, version=nxt), trusted_keys=[pub])
            store.promote()
        else:
            store.stage_candidate(src, version=nxt)
            if rng.random() < 0.8:
                store.promote()


def _check(root: Path, load: bool) -> str | None:
    """Why the store under ``root`` is bricked (None when it opens and its active model loads)."""
    from sdk.models.store import ModelStore
    from sdk.rollout.versions import VersionStore

    try:
        if not ModelStore(root / "active").usable():  # what an app that only follows the link sees
            return "the active link leads to a model with no usable variant"
        store = VersionStore(root, emit=lambda *a, **k: None)
        model = ModelStore(store.active())
        if not model.usable():
            return f"active {store.active_version()}: no usable variant"
        if load:
            model.load(model.usable()[0], warmup=1).close()
    except Exception as e:  # noqa: BLE001 - any failure to open or load counts as bricked
        return f"{type(e).__name__}: {e}"
    return None


def install_kill_trials(n: int = 100, seed: int = 0, *, workdir: str | os.PathLike[str] | None = None,
                        max_delay_s: float | None = None, load: bool = True,
                        progress: Callable[[Iterable[int]], Iterable[int]] | None = None) -> dict[str, Any]:
    """Run ``n`` kill trials; returns ``{"trials", "bricked", "child_failures", "interrupted", "versions_seen",
    "problems"}`` (``child_failures``: children that stopped before the kill — a bug, not a crash).
    ``interrupted``: trials whose kill left staging leftovers (the kill landed inside an operation). Each kill
    comes after a random delay up to ``max_delay_s`` (default: 3 times one stage + promote measured here)."""
    from sdk.rollout.bundle import keygen
    from sdk.rollout.versions import VersionStore

    base = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="ember-crashtest-"))
    src = tiny_model_folder(base / "src", seed=seed)
    key = base / "signing.key"
    keygen(key, key.with_suffix(".pub"))
    root = base / "store"
    store = VersionStore(root, emit=lambda *a, **k: None)
    store.stage_candidate(src, version="1.0.0")
    store.promote()
    for v in ("1.0.1", "1.0.2"):  # the second one is timed (warm)
        t0 = time.perf_counter()
        store.stage_candidate(src, version=v)
        store.promote()
    delay = max_delay_s or max(0.02, 3.0 * (time.perf_counter() - t0))  # a few operations' time, whatever the load
    rng = random.Random(seed)
    bricked, interrupted, problems, seen = 0, 0, [], set()
    for i in (progress or iter)(range(n)):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child never returns
            try:
                _churn(root, src, key, seed * 100003 + i)
            except BaseException as e:  # noqa: BLE001 - reported to the parent through the exit file
                (base / "child-error.txt").write_text(f"{type(e).__name__}: {e}")
            finally:
                os._exit(3)
        time.sleep(rng.uniform(0.0, delay))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        if not os.WIFSIGNALED(status):  # the child stopped by itself: an error in the store, not a kill
            err = base / "child-error.txt"
            problems.append(f"trial {i}: the child exited: {err.read_text() if err.exists() else status}")
        interrupted += any((root / ".tmp").iterdir()) or any(root.glob(".*.tmp"))
        problem = _check(root, load)
        if problem:
            bricked += 1
            problems.append(f"trial {i}: {problem}")
        else:
            seen.add(VersionStore(root, emit=lambda *a, **k: None).active_version())
    if workdir is None and not bricked:
        shutil.rmtree(base, ignore_errors=True)
    return {"trials": n, "bricked": bricked, "child_failures": sum("child exited" in p for p in problems), "interrupted": interrupted, "versions_seen": len(seen),
            "max_delay_s": round(delay, 4), "problems": problems[:10], "workdir": str(base)}
