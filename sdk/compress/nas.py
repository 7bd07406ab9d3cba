"""Resource-aware architecture search: Optuna's NSGA-II over a model family's knobs, accuracy (a short
training proxy) against surrogate latency, under latency / peak-memory / energy budgets.

    spec = SearchSpec(family=build, space={"width": [16, 32, 64], "depth": [1, 2, 3, 4]},
                      proxy=FitProxy(task), input_shape=task.input_shape,
                      budgets=Budgets(latency_ms=0.2, memory_kb=64, energy_mj=1.0))
    result = search(spec, trials=40, storage="postgresql://host/db", out="runs/nas")   # or sqlite (default)
    result.chosen.knobs, [c.accuracy for c in result.front]

**Costs** come before any training: each candidate is exported to ONNX once and costed by the
per-layer latency table (``sdk.compress.latency_lut``), the MAC and peak-memory counters and the
energy model. A candidate over a budget is not trained (NSGA-II's ``constraints_func`` ranks it
behind every feasible one); an architecture already evaluated in the study is not trained twice.

**Progressive resource use** (successive halving): the search trains every candidate at a small
``effort`` (``eta ** -rungs`` of full training: fewer epochs / less data, as the proxy decides); then
the feasible Pareto front (at most ``top``) is trained again at ``eta`` times the effort, the best
``1/eta`` by (Pareto rank, accuracy) go on, up to full effort. The front reported is the Pareto front
of the candidates at the last rung; the chosen architecture is its most accurate member.

**Storage is the checkpoint**: trials live in an Optuna RDB storage (default ``sqlite:///OUT/study.db``;
a ``postgresql://`` URL lets several machines run the same study: start the same command on each,
with a different ``worker`` number so their samplers differ). ``trials`` is the total the study should
reach: run again after an interruption and it continues; refined accuracies are kept in the study's
user attributes, so refinement resumes too. Seeded: the sampler (``seed + worker``) and the proxy.
"""

from __future__ import annotations

import logging
import math
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sdk.compress.latency_lut import LatencyTable, model_costs
from sdk.errors import ConfigError

log = logging.getLogger(__name__)
Proxy = Callable[[Any, float], "float | dict[str, float]"]  # (model, effort in (0, 1]) -> accuracy %, or a dict
ShapeOf = Sequence[int] | Callable[[dict[str, Any]], Sequence[int]]
COST_KEYS = ("latency_ms", "macs", "params", "peak_activation_bytes", "energy_mj")


@dataclass
class Budgets:
    """Limits a deployable candidate must meet (None: no limit). Memory is peak activation memory, KiB."""

    latency_ms: float | None = None
    memory_kb: float | None = None
    energy_mj: float | None = None

    def violations(self, costs: dict[str, float]) -> list[float]:
        """Optuna constraint values (feasible when all are <= 0), relative to each budget."""
        pairs = ((self.latency_ms, costs["latency_ms"]), (self.memory_kb, costs["peak_activation_bytes"] / 1024),
                 (self.energy_mj, costs["energy_mj"]))
        return [(v - b) / b if b else -1.0 for b, v in pairs]


@dataclass
class Candidate:
    """One architecture: its knobs, costs and accuracy (at ``effort`` of full training)."""

    trial: int
    knobs: dict[str, Any]
    accuracy: float
    effort: float
    feasible: bool
    costs: dict[str, float]
    extra: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"trial": self.trial, "knobs": self.knobs, "accuracy": self.accuracy, "effort": self.effort,
                "feasible": self.feasible, **self.costs, **self.extra}


@dataclass
class SearchSpec:
    family: Callable[..., Any]  # knobs -> torch module
    space: dict[str, Sequence[Any]]  # knob -> choices
    proxy: Proxy
    input_shape: ShapeOf
    budgets: Budgets = field(default_factory=Budgets)
    lut: LatencyTable | None = None
    device_class: str | None = None

    def shape(self, knobs: dict[str, Any]) -> list[int]:
        return list(self.input_shape(knobs) if callable(self.input_shape) else self.input_shape)


@dataclass
class SearchResult:
    front: list[Candidate]
    chosen: Candidate | None
    trials: list[Candidate]
    budgets: Budgets
    study: str
    efforts: list[float]

    def as_dict(self) -> dict[str, Any]:
        return {"study": self.study, "budgets": asdict(self.budgets), "efforts": self.efforts,
                "chosen": self.chosen.as_dict() if self.chosen else None,
                "front": [c.as_dict() for c in self.front], "trials": [c.as_dict() for c in self.trials]}


class FitProxy:
    """The default accuracy proxy: train with ``sdk.compress.fit`` for ``round(epochs * effort)`` epochs
    (at least one) and score top-1 on ``val`` (percent). ``report``: another split scored too, for the
    record only (``report_accuracy``), never used to choose."""

    def __init__(self, train: Any, val: Any, *, epochs: int = 9, lr: float = 3e-3, batch_size: int = 64,
                 seed: int = 0, report: Any = None, progress: bool = False) -> None:
        self.train, self.val, self.report = train, val, report
        self.epochs, self.lr, self.batch_size, self.seed, self.progress = epochs, lr, batch_size, seed, progress

    def __call__(self, model: Any, effort: float) -> dict[str, float]:
        from sdk.compress.train import evaluate, fit

        epochs = max(1, round(self.epochs * effort))
        fit(model, self.train, epochs, self.lr, seed=self.seed, batch_size=self.batch_size,
            progress=self.progress, desc=f"proxy {epochs} ep")
        out = {"accuracy": evaluate(model, self.val) * 100, "epochs": float(epochs)}
        if self.report is not None:
            out["report_accuracy"] = evaluate(model, self.report) * 100
        return out


# ---- storage -----------------------------------------------------------------------------------------
def storage_url(url: str) -> str:
    """SQLAlchemy's plain ``postgresql://`` means psycopg2; use psycopg 3 when that is what is installed."""
    import importlib.util

    if url.startswith(("postgresql://", "postgres://")) and importlib.util.find_spec("psycopg2") is None:
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def open_study(storage: str, name: str, *, seed: int = 0, worker: int = 0, population: int = 8,
               budgets: Budgets | None = None) -> Any:
    """Create or load the two-objective study (maximize accuracy, minimize latency) with NSGA-II."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rdb = _rdb(storage)
    sampler = optuna.samplers.NSGAIISampler(population_size=population, seed=seed + worker)
    study = optuna.create_study(storage=rdb, study_name=name, sampler=sampler, load_if_exists=True,
                                directions=["maximize", "minimize"])
    if budgets is not None:
        stored = study.user_attrs.get("budgets")
        if stored is None:
            study.set_user_attr("budgets", asdict(budgets))
        elif stored != asdict(budgets):
            raise ConfigError(f"study {name!r} was run with budgets {stored}, not {asdict(budgets)}: "
                              "use another study name (or out folder) for other budgets")
    return study


def _rdb(storage: str, tries: int = 4) -> Any:
    """An RDB storage; workers starting together may race to create its tables: retry then."""
    import time

    import optuna

    for attempt in range(tries):
        try:
            return optuna.storages.RDBStorage(storage_url(storage), engine_kwargs={"pool_pre_ping": True})
        except Exception as e:  # noqa: BLE001 - SQLAlchemy/driver errors of many types
            text = " ".join(str(e).split())
            if attempt + 1 < tries and ("already exists" in text or "duplicate key" in text):
                time.sleep(0.2 * (attempt + 1))
                continue
            raise ConfigError(f"search storage {storage!r} is not reachable ({text[:200]}); "
                              "give a writable sqlite:///path or a running postgresql:// URL") from None
    raise AssertionError("unreachable")


def _complete(study: Any) -> list[Any]:
    import optuna

    return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))


# ---- trials ------------------------------------------------------------------------------------------
def _score(proxy: Proxy, model: Any, effort: float) -> tuple[float, dict[str, float]]:
    out = proxy(model, effort)
    if isinstance(out, dict):
        return float(out["accuracy"]), {k: float(v) for k, v in out.items() if k != "accuracy"}
    return float(out), {}


def costs_of(spec: SearchSpec, knobs: dict[str, Any]) -> tuple[Any, dict[str, float]]:
    model = spec.family(**knobs)
    if spec.lut is None:
        spec.lut = LatencyTable()
    return model, model_costs(model, spec.shape(knobs), spec.lut, spec.device_class).as_dict()


def calibrate(spec: SearchSpec, models: int = 6, seed: int = 0) -> Any:
    """Fit the latency surrogate on ``models`` random members of the family (measured now)."""
    import random

    if spec.lut is None:
        spec.lut = LatencyTable()
    rng = random.Random(seed)
    picks: list[dict[str, Any]] = []
    for _ in range(20 * models):
        knobs = {k: rng.choice(list(v)) for k, v in spec.space.items()}
        if knobs not in picks:
            picks.append(knobs)
        if len(picks) == models:
            break
    shapes = {tuple(spec.shape(k)) for k in picks}
    if len(shapes) > 1:  # a resolution knob: fit on ONNX protos exported at each one's own shape
        from sdk.compress.latency_lut import to_onnx

        return spec.lut.fit([to_onnx(spec.family(**k), spec.shape(k)) for k in picks])
    return spec.lut.fit([spec.family(**k) for k in picks], spec.shape(picks[0]))


def make_objective(spec: SearchSpec, effort: float, worker: str) -> Callable[[Any], tuple[float, float]]:
    def objective(trial: Any) -> tuple[float, float]:
        knobs = {k: trial.suggest_categorical(k, list(v)) for k, v in spec.space.items()}
        trial.set_user_attr("worker", worker)
        for t in _complete(trial.study):
            if t.params == knobs and "costs" in t.user_attrs:  # evaluated before: reuse, do not retrain
                for k in ("costs", "trained", "extra"):
                    trial.set_user_attr(k, t.user_attrs.get(k))
                _constrain(trial, spec.budgets.violations(t.user_attrs["costs"]))
                trial.set_user_attr("copy_of", t.number)
                return float(t.values[0]), float(t.values[1])
        model, costs = costs_of(spec, knobs)
        cons = spec.budgets.violations(costs)
        feasible = all(c <= 0 for c in cons)
        _constrain(trial, cons)
        acc, extra = _score(spec.proxy, model, effort) if feasible else (0.0, {})
        for k, v in (("costs", costs), ("trained", feasible), ("extra", extra)):
            trial.set_user_attr(k, v)
        return acc, costs["latency_ms"]

    return objective


def _constrain(trial: Any, violations: list[float]) -> None:
    for name, v in zip(("latency", "memory", "energy"), violations, strict=True):
        trial.set_constraint(name, v)


def run_trials(spec: SearchSpec, study: Any, trials: int, effort: float, *, worker: str | None = None,
               progress: bool = True) -> int:
    """Run trials until the study holds ``trials`` complete ones; returns how many this call ran."""
    import optuna
    from tqdm import tqdm

    done = len(_complete(study))
    if done >= trials:
        return 0
    bar = tqdm(total=trials, initial=done, desc="search", unit="trial", disable=not progress, leave=False)

    def tick(study: Any, trial: Any) -> None:
        bar.update(1)

    before = done
    try:
        study.optimize(make_objective(spec, effort, worker or f"{socket.gethostname()}:{os.getpid()}"),
                       n_trials=trials - done, gc_after_trial=False,
                       callbacks=[optuna.study.MaxTrialsCallback(trials), tick])
    finally:
        bar.close()
    return len(_complete(study)) - before


# ---- results -----------------------------------------------------------------------------------------
def candidates(study: Any) -> list[Candidate]:
    """Every complete trial at its search effort (copies of an earlier trial left out)."""
    effort = float(study.user_attrs.get("search_effort", 1.0))
    out = []
    for t in _complete(study):
        if "copy_of" in t.user_attrs or "costs" not in t.user_attrs:
            continue
        out.append(Candidate(t.number, dict(t.params), float(t.values[0]), effort,
                             bool(t.user_attrs.get("trained")), dict(t.user_attrs["costs"]),
                             dict(t.user_attrs.get("extra") or {})))
    return out


def pareto(cands: Sequence[Candidate]) -> list[Candidate]:
    """Candidates no other beats on both accuracy (higher) and latency (lower), fastest first."""
    front = [c for c in cands if not any(
        o.accuracy >= c.accuracy and o.costs["latency_ms"] <= c.costs["latency_ms"]
        and (o.accuracy > c.accuracy or o.costs["latency_ms"] < c.costs["latency_ms"]) for o in cands)]
    return sorted(front, key=lambda c: c.costs["latency_ms"])


def _ranked(cands: Sequence[Candidate]) -> list[Candidate]:
    """Candidates by Pareto rank (non-dominated sorting), then accuracy."""
    rest, out = list(cands), []
    while rest:
        front = pareto(rest)
        out += sorted(front, key=lambda c: -c.accuracy)
        rest = [c for c in rest if c not in front]
    return out


def refine(spec: SearchSpec, study: Any, *, top: int = 4, eta: int = 3, rungs: int = 2,
           progress: bool = True) -> list[Candidate]:
    """Successive halving of the feasible front: returns the candidates of the last rung."""
    from tqdm import tqdm

    pool = _ranked([c for c in candidates(study) if c.feasible])[:top]
    efforts = [eta ** (r - rungs) for r in range(rungs + 1)]
    for r in range(1, rungs + 1):
        keep = pool if r == 1 else _ranked(pool)[:max(1, math.ceil(len(pool) / eta))]
        pool = []
        for c in tqdm(keep, desc=f"refine {r}/{rungs}", unit="model", disable=not progress, leave=False):
            key = f"rung{r}:{c.trial}"
            rec = study.user_attrs.get(key)
            if rec is None:
                acc, extra = _score(spec.proxy, spec.family(**c.knobs), efforts[r])
                rec = {"accuracy": acc, "extra": extra}
                study.set_user_attr(key, rec)
            pool.append(Candidate(c.trial, c.knobs, rec["accuracy"], efforts[r], True, c.costs, rec["extra"]))
    return pool


def search(spec: SearchSpec, trials: int, *, storage: str | None = None, out: str | Path | None = None,
           study_name: str = "ember-nas", seed: int = 0, worker: int = 0, population: int = 8, top: int = 4,
           eta: int = 3, rungs: int = 2, do_refine: bool = True, progress: bool = True) -> SearchResult:
    """The whole search (see the module docstring); writes ``front.json`` and ``pareto.png`` into ``out``.
    An unfitted latency table is first fitted on a few members of the family (``calibrate``)."""
    if trials < 1 or not spec.space or any(not list(v) for v in spec.space.values()):
        raise ConfigError("search: give at least 1 trial and at least one choice for every knob")
    if spec.lut is None or spec.lut.fitted.models == 0:
        calibrate(spec, seed=seed)
    if storage is None:
        if out is None:
            raise ConfigError("search: give a storage URL or an out folder (for sqlite:///OUT/study.db)")
        Path(out).mkdir(parents=True, exist_ok=True)
        storage = f"sqlite:///{Path(out).resolve() / 'study.db'}"
    study = open_study(storage, study_name, seed=seed, worker=worker, population=population, budgets=spec.budgets)
    effort = float(eta ** -rungs) if do_refine else 1.0
    if "search_effort" not in study.user_attrs:
        study.set_user_attr("search_effort", effort)
    run_trials(spec, study, trials, float(study.user_attrs["search_effort"]), progress=progress)
    trials_now = candidates(study)
    last = refine(spec, study, top=top, eta=eta, rungs=rungs, progress=progress) if do_refine else \
        [c for c in trials_now if c.feasible]
    front = pareto(last)
    chosen = max(front, key=lambda c: (c.accuracy, -c.costs["latency_ms"])) if front else None
    result = SearchResult(front, chosen, trials_now, spec.budgets, study_name,
                          [eta ** (r - rungs) for r in range(rungs + 1)] if do_refine else [1.0])
    if out is not None:
        save_result(result, out)
    return result


def save_result(result: SearchResult, out: str | Path) -> dict[str, Path]:
    from sdk.compress.search_plot import plot_front
    from sdk.util.files import write_text_atomic
    from sdk.util.jsonutil import dumps

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "front.json", "plot": out / "pareto.png"}
    write_text_atomic(paths["json"], dumps(result.as_dict(), indent=2) + "\n")
    plot_front(result, paths["plot"])
    return paths
