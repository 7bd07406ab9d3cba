"""Two-model cascades and early-exit chains at inference, recorded in a model folder's manifest.

    choice = select_cascade(small_probs_val, big_probs_val, y_val, small_macs, big_macs, budget_points=0.5)
    held_out = simulate([small_probs_test, big_probs_test], y_test, choice.threshold, choice_costs)
    write_cascade("models/kws", "small.onnx", choice, small_macs, big_macs, budget_points=0.5)
    manager = ModelManager("models/kws")       # runs the cascade: small first, the big tier when unsure

A cascade is a chain of two stages: the small model answers when its top softmax probability reaches
the threshold, otherwise the big one (the folder's variants, served by the model manager with its tier
switching) runs on the same input. An early-exit network (``sdk.compress.exits``) is a chain of stage
bodies with a head after each but the last. The manifest's ``exits`` entry holds the chain (files,
MACs, sha256), the threshold chosen on validation data with its accuracy budget, the expected exit
rates and average MACs, and ``low_battery_threshold`` (chosen the same way with a looser budget) that
the degradation ladder's ``ExitStep`` switches to when the battery is low.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sdk.compress.exits import PolicyResult, choose_threshold, cumulative_macs, softmax
from sdk.errors import ModelError

FINAL = "variants"  # a stage head that is the folder's own variants (the manager's current tier)
Runner = Callable[[Any], list[np.ndarray]]


class Chain:
    """Stages ``(body, head)``: the body maps the carried tensor to the next one, the head classifies it
    (``FINAL``: the caller's ``final(x)`` on the original input). The threshold may be changed at any time."""

    def __init__(self, stages: Sequence[tuple[Runner | None, Runner | str | None]], threshold: float, *,
                 kind: str = "cascade", confidence: str = "softmax", low_battery_threshold: float | None = None,
                 closers: Sequence[Callable[[], None]] = ()) -> None:
        if len(stages) < 2:
            raise ModelError("a cascade or exit chain needs at least two stages")
        self.stages, self.threshold, self.kind = list(stages), float(threshold), kind
        self.confidence = confidence
        self.low_battery_threshold = low_battery_threshold
        self.counts = [0] * len(stages)
        self._closers = list(closers)

    def _conf(self, out: list[np.ndarray]) -> float:
        y = np.asarray(out[0]).reshape(-1)
        return float((softmax(y) if self.confidence == "softmax" else y).max())

    def run(self, x: Any, final: Runner | None = None) -> tuple[list[np.ndarray], int]:
        """The outputs and the index of the exit that answered."""
        carried, last = x, len(self.stages) - 1
        for k, (body, head) in enumerate(self.stages):
            if body is not None:
                carried = body(carried)[0]
            if head is None:
                out = [carried]
            elif head == FINAL:
                if final is None:
                    raise ModelError("this chain ends in the folder's variants: run it through the ModelManager")
                out = final(x)
            else:
                out = head(carried)  # type: ignore[operator]
            if k == last or self._conf(out) >= self.threshold:
                self.counts[k] += 1
                return out, k
        raise AssertionError("unreachable")

    def __call__(self, x: Any, final: Runner | None = None) -> list[np.ndarray]:
        return self.run(x, final)[0]

    @property
    def exit_rate(self) -> float:
        """Fraction of the calls so far answered before the last stage."""
        n = sum(self.counts)
        return (n - self.counts[-1]) / n if n else 0.0

    def close(self) -> None:
        for c in self._closers:
            c()


# ---- from / to a manifest --------------------------------------------------------------------------------
def _ref_path(folder: Path, ref: dict[str, Any]) -> Path:
    from sdk.models.manifest import file_problem, sha256_file

    problem = file_problem(str(ref.get("file", "")), folder)
    if problem:
        raise ModelError(f"exits: {problem}")
    path = folder / ref["file"]
    if not path.is_file():
        raise ModelError(f"exits: {path} is missing (re-export the cascade or remove the manifest's 'exits')")
    if ref.get("sha256") and sha256_file(path) != ref["sha256"]:
        raise ModelError(f"exits: {path} does not match its sha256 in the manifest (replaced? re-export it)")
    return path


def load_chain(manifest: Any, threads: int = 1) -> Chain | None:
    """The chain of a manifest's ``exits`` entry (None without one), its files checked and loaded."""
    from sdk.runtime.backends import load_backend

    spec = manifest.extra.get("exits")
    if not spec:
        return None
    folder = Path(manifest.folder or ".")
    backends: list[Any] = []

    def runner(ref: Any) -> Runner | str | None:
        if ref is None or ref == FINAL:
            return ref
        b = load_backend(_ref_path(folder, ref), "onnxruntime", threads=threads)
        backends.append(b)
        return b.run

    try:
        stages = [(runner(s.get("body")), runner(s.get("head"))) for s in spec["stages"]]
    except ModelError:
        for b in backends:
            b.close()
        raise
    return Chain(stages, spec["threshold"], kind=spec.get("kind", "cascade"),
                 confidence=spec.get("confidence", "softmax"),
                 low_battery_threshold=spec.get("low_battery_threshold"), closers=[b.close for b in backends])


def exits_entry(kind: str, stages: list[dict[str, Any]], choice: PolicyResult, budget_points: float,
                degraded: PolicyResult | None = None, degraded_budget_points: float | None = None,
                folder: Path | None = None) -> dict[str, Any]:
    """The manifest's ``exits`` value (file references get their sha256 when ``folder`` is given)."""
    from sdk.models.manifest import sha256_file

    if folder is not None:
        for s in stages:
            for part in ("body", "head"):
                ref = s.get(part)
                if isinstance(ref, dict) and "file" in ref:
                    ref["sha256"] = sha256_file(folder / ref["file"])
    entry: dict[str, Any] = {
        "kind": kind, "threshold": choice.threshold, "confidence": "softmax", "stages": stages,
        "budget_points": budget_points, "expected_exit_rate": choice.exit_rates, "avg_macs": choice.avg_cost,
        "full_macs": choice.full_cost, "validation": {"accuracy": choice.accuracy, "reference_accuracy":
                                                      choice.reference_accuracy, "n": choice.n}}
    if degraded is not None:
        entry["low_battery_threshold"] = degraded.threshold
        entry["low_battery"] = {"budget_points": degraded_budget_points, "expected_exit_rate": degraded.exit_rates,
                                "avg_macs": degraded.avg_cost}
    return entry


def _save_exits(folder: Path, entry: dict[str, Any]) -> dict[str, Any]:
    from sdk.models.manifest import Manifest

    m = Manifest.load(folder)
    m.extra["exits"] = entry
    m.save(folder)
    return entry


def onnx_probs(path: str | Path, x: np.ndarray, threads: int = 1, progress: bool = False) -> np.ndarray:
    """Softmax of an ONNX classifier's first output for every sample of ``x`` (batch 1, ONNX Runtime)."""
    from tqdm import tqdm

    from sdk.runtime.backends import load_backend

    with load_backend(path, "onnxruntime", threads=threads) as m:
        rows = [m.run(np.ascontiguousarray(x[i:i + 1], np.float32))[0].reshape(-1)
                for i in tqdm(range(len(x)), desc=Path(path).name, unit="sample", disable=not progress, leave=False)]
    return softmax(np.stack(rows))


def select_cascade(small_probs: np.ndarray, big_probs: np.ndarray, labels: np.ndarray, small_macs: float,
                   big_macs: float, budget_points: float = 0.5, z: float = 2.0) -> PolicyResult:
    """The threshold of the small model's confidence (see ``exits.choose_threshold``) on validation data."""
    return choose_threshold([small_probs, big_probs], labels, cascade_costs(small_macs, big_macs), budget_points, z)


def cascade_costs(small_macs: float, big_macs: float) -> list[float]:
    return cumulative_macs([{"head": {"macs": small_macs}}, {"head": {"macs": big_macs}}])


def write_cascade(folder: str | Path, small_onnx: str | Path, choice: PolicyResult, small_macs: float,
                  big_macs: float, budget_points: float, degraded: PolicyResult | None = None,
                  degraded_budget_points: float | None = None) -> dict[str, Any]:
    """Copy the small model into ``folder`` (a model folder whose variants are the big model) and record
    the cascade in its manifest."""
    folder = Path(folder)
    shutil.copyfile(small_onnx, folder / "cascade_small.onnx")
    stages = [{"name": "small", "body": None, "head": {"file": "cascade_small.onnx", "macs": small_macs}},
              {"name": "big", "body": None, "head": FINAL, "macs": big_macs}]
    return _save_exits(folder, exits_entry("cascade", stages, choice, budget_points, degraded,
                                           degraded_budget_points, folder))


def write_exits(folder: str | Path, stages: list[dict[str, Any]], choice: PolicyResult, budget_points: float,
                degraded: PolicyResult | None = None, degraded_budget_points: float | None = None
                ) -> dict[str, Any]:
    """Record an early-exit network's stages (from ``exits.export_exits``, files inside ``folder``)."""
    return _save_exits(Path(folder), exits_entry("early_exit", stages, choice, budget_points, degraded,
                                                 degraded_budget_points, Path(folder)))
