"""Fuzz the file inputs: mutated .onnx, .tflite and manifest files through the code that reads them.

Each mutated file runs through every target of its kind, in worker processes with a timeout per
run, and each run ends as one of:

* ``ran``          the target accepted the file and finished,
* ``typed_error``  it raised an Ember error (``sdk.errors.EmberError``): the wanted refusal,
* ``untyped``      any other exception escaped (a bug: the user sees a library's traceback),
* ``crash``        the worker process died (segfault, abort),
* ``hang``         the run took longer than ``--timeout`` seconds.

Targets: ``.onnx`` → ONNX Runtime backend (load + one run) and ``ember profile``; ``.tflite`` →
LiteRT backend (load + one run) and ``ember export-c``; manifests → ``ModelStore`` (verify + load
each usable variant) and ``ModelManager``. Mutations: bit flips, interesting bytes, truncation,
chunk insertion/deletion, and structure-aware ones (a numeric field of the flatbuffer / protobuf /
JSON set to a hostile value, e.g. a zero point of 2**57 or a tensor index of -7).

    nice -n 10 .venv/bin/python bench/fuzz.py [--files 2400] [--seed 0] [--workers 2] [--timeout 60]

Prints one JSON object and writes ``bench/results/fuzz.json``. ``tests/fuzz/test_fuzz.py`` runs a
few seconds of the same cases in the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _fuzz_mutations import mutate  # bench/ itself, as for _util

WORKER_MEMORY = 6 << 30  # address space per worker; a model asking for more must fail cleanly
OUTCOMES = ("ran", "typed_error", "untyped", "crash", "hang")
# ---- seeds ---------------------------------------------------------------------------------------
def make_seeds(folder: Path) -> dict[str, list[Path]]:
    """Small valid files of each kind: fp32 + int8 .onnx, int8 + float .tflite, a model folder."""
    import logging

    from firmware_export import sample_models
    from sdk.models.builtin import tiny_convnet
    from sdk.models.variants import make_model_folder
    from sdk.optimize.tflite_export import onnx_to_tflite

    logging.getLogger().setLevel(logging.ERROR)
    folder.mkdir(parents=True, exist_ok=True)
    tiny = tiny_convnet(folder / "tiny.onnx", input_hw=(16, 16), channels=(4, 8), classes=5)
    ds = sample_models.dscnn(folder / "dscnn.onnx")
    c1 = sample_models.conv1d_net(folder / "conv1d.onnx")
    make_model_folder(folder / "model", tiny, "tiny", tiers=("fp32", "int8"))
    return {
        "onnx": [Path(tiny), folder / "model" / "model.int8.onnx"],
        "tflite": [sample_models.to_int8(Path(tiny), folder / "tiny.tflite", [1, 3, 16, 16]),
                   sample_models.to_int8(Path(ds), folder / "dscnn.tflite", [1, 1, 49, 10]),
                   sample_models.to_int8(Path(c1), folder / "conv1d.tflite", [1, 4, 64]),
                   onnx_to_tflite(tiny, folder / "tiny.f32.tflite")],
        "manifest": [folder / "model" / "manifest.json"],
    }


# ---- targets -------------------------------------------------------------------------------------
def _example(backend: Any) -> Any:
    import numpy as np

    spec = backend.inputs[0]
    shape = [d if isinstance(d, int) and 0 < d < 4096 else 1 for d in spec.shape]
    return np.zeros(shape, dtype=np.float32)


def _backend(name: str) -> Callable[[Path, Path], None]:
    def run(path: Path, work: Path) -> None:
        from sdk.runtime.backends import load_backend

        with load_backend(path, name) as b:
            if b.inputs:  # a model without inputs loads; there is nothing to feed it
                b.run(_example(b))
    return run


def _profile(path: Path, work: Path) -> None:
    from sdk.optimize.profile import profile_model

    profile_model(path, runs=1)


def _export_c(path: Path, work: Path) -> None:
    import firmware_export

    firmware_export.export(path, work / "out", measure=False)


def _store(path: Path, work: Path) -> None:
    from sdk.models.store import ModelStore

    store = ModelStore(path.parent, device_class="fuzz")
    for v in store.usable():
        store.load(v, warmup=1).close()


def _manager(path: Path, work: Path) -> None:
    from sdk.models.manager import ModelManager

    ModelManager(path.parent, measure="never", background=False).close()


TARGETS: dict[str, dict[str, Callable[[Path, Path], None]]] = {
    "onnx": {"onnxruntime": _backend("onnxruntime"), "profile": _profile},
    "tflite": {"litert": _backend("litert"), "export_c": _export_c},
    "manifest": {"store": _store, "manager": _manager},
}


def run_case(kind: str, target: str, path: Path) -> tuple[str, str]:
    """Run one target on one file in this process: (outcome, detail) with outcome ran/typed_error/untyped."""
    from sdk.errors import EmberError

    with tempfile.TemporaryDirectory(prefix="fuzz-") as work:
        try:
            TARGETS[kind][target](Path(path), Path(work))
            return "ran", ""
        except EmberError as e:
            return "typed_error", type(e).__name__
        except Exception as e:  # noqa: BLE001 - what the fuzzer looks for
            tb = traceback.extract_tb(e.__traceback__)
            ours = [f for f in tb if "/sdk/" in f.filename or "/firmware_export/" in f.filename] or tb
            where = f"{Path(ours[-1].filename).name}:{ours[-1].lineno}" if ours else "?"
            return "untyped", f"{type(e).__name__} at {where}: {str(e)[:160]}"


def write_case(kind: str, seed_path: Path, data: bytes, folder: Path, i: int) -> Path:
    """Write the mutated ``data``; a manifest gets a copy of its model folder's files beside it."""
    if kind == "manifest":
        d = folder / f"m{i:05d}"
        shutil.copytree(seed_path.parent, d)
        (d / "manifest.json").write_bytes(data)
        return d / "manifest.json"
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / f"f{i:05d}{seed_path.suffix}"
    p.write_bytes(data)
    return p


def cases(seeds: dict[str, list[Path]], n: int, seed: int, folder: Path,
          share: dict[str, float] | None = None) -> list[tuple[str, Path]]:
    """``n`` mutated files (kinds in proportion to ``share``), written under ``folder``."""
    share = share or {"onnx": 0.4, "tflite": 0.4, "manifest": 0.2}
    shutil.rmtree(folder, ignore_errors=True)
    rng = random.Random(seed)
    out = []
    raw = {k: [(p, p.read_bytes()) for p in ps] for k, ps in seeds.items()}
    kinds = [k for k in share for _ in range(round(share[k] * 100))]
    for i in range(n):
        kind = kinds[i % len(kinds)] if n >= len(kinds) else rng.choice(kinds)
        p, data = rng.choice(raw[kind])
        out.append((kind, write_case(kind, p, mutate(kind, data, rng), folder, i)))
    return out


# ---- workers -------------------------------------------------------------------------------------
class Worker:
    """A child process running ``run_case`` for JSON-line requests; killed and replaced on a hang."""

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=REPO)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        if self.alive:
            self.proc.kill()
        self.proc.wait()


def worker_main() -> None:
    """Answer requests on stdin; results go to the real stdout, everything libraries print to stderr."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEMORY, WORKER_MEMORY))  # a shared machine: bound each run
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    import logging

    logging.disable(logging.CRITICAL)
    for line in sys.stdin:
        kind, target, path = json.loads(line)
        out.write(json.dumps(run_case(kind, target, Path(path))) + "\n")


def run_all(items: list[tuple[str, Path]], workers: int, timeout: float,
            progress: Callable[[int], None] | None = None) -> tuple[Counter, dict[str, Counter], list[dict]]:
    """Run every target on every file over ``workers`` processes (round robin, one run in flight each)."""
    jobs = [(kind, target, path) for kind, path in items for target in TARGETS[kind]]
    pool = [Worker() for _ in range(max(1, workers))]
    totals: Counter = Counter()
    per_target: dict[str, Counter] = {}
    problems: list[dict] = []
    pending: dict[int, tuple[str, str, Path, float]] = {}
    queue = list(reversed(jobs))
    try:
        while queue or pending:
            for w, worker in enumerate(pool):
                if w not in pending and queue:
                    kind, target, path = queue.pop()
                    if not worker.alive:
                        pool[w] = worker = Worker()
                    worker.proc.stdin.write((json.dumps([kind, target, str(path)]) + "\n").encode())
                    worker.proc.stdin.flush()
                    pending[w] = (kind, target, path, time.monotonic())
            outs = {pool[w].proc.stdout: w for w in pending}
            ready, _, _ = select.select(list(outs), [], [], 0.5)
            now = time.monotonic()
            for w in list(pending):
                kind, target, path, t0 = pending[w]
                worker = pool[w]
                if worker.proc.stdout in ready:
                    line = worker.proc.stdout.readline()
                    outcome, detail = json.loads(line) if line else ("crash", f"exit {worker.proc.wait()}")
                elif now - t0 > timeout:
                    worker.close()
                    outcome, detail = "hang", f"no answer in {timeout:g} s"
                else:
                    continue
                del pending[w]
                if outcome in ("crash", "hang"):
                    pool[w] = Worker()
                totals[outcome] += 1
                per_target.setdefault(f"{kind}:{target}", Counter())[outcome] += 1
                if outcome in ("untyped", "crash", "hang"):
                    problems.append({"kind": kind, "target": target, "file": f"{path.parent.name}/{path.name}",
                                     "outcome": outcome,
                                     "detail": detail})
                if progress:
                    progress(1)
    finally:
        for worker in pool:
            worker.close()
    return totals, per_target, problems


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--files", type=int, default=2400, help="mutated files to generate (default 2400)")
    ap.add_argument("--seed", type=int, default=0, help="random seed of the mutations (default 0)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds before a run counts as a hang")
    ap.add_argument("--keep", metavar="DIR", help="keep the mutated files in DIR (default: a temp folder)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker_main()
        return
    from _util import load, write_result
    from tqdm import tqdm

    load_before = load()

    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="ember-fuzz-"))
    base.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    seeds = make_seeds(base / "seeds")
    items = cases(seeds, args.files, args.seed, base / "cases")
    n_runs = sum(len(TARGETS[k]) for k, _ in items)
    with tqdm(total=n_runs, desc="fuzz runs", file=sys.stderr) as bar:
        totals, per_target, problems = run_all(items, args.workers, args.timeout, bar.update)
    result = {
        "files": len(items), "runs": n_runs,
        "files_per_kind": dict(Counter(k for k, _ in items)),
        "outcomes": {o: totals.get(o, 0) for o in OUTCOMES},
        "per_target": {t: {o: c.get(o, 0) for o in OUTCOMES} for t, c in sorted(per_target.items())},
        "problems": problems[:50],
        "seed": args.seed, "timeout_s": args.timeout, "workers": args.workers,
        "seconds": round(time.time() - t0, 1),
    }
    write_result("fuzz", result, load_before)
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
