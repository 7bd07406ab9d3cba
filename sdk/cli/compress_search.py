"""``ember compress search`` (architecture search under latency / memory / energy budgets) and
``ember compress cascade`` (a small model that answers when confident, a big one otherwise).

Registered by ``sdk.cli.compress`` under ``ember compress``; the work is in ``sdk.compress.nas`` and
``sdk.compress.cascade`` (see sdk/compress/SEARCH.md).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from sdk.errors import ConfigError

SEARCH_HELP = """Search a model family's knobs with Optuna's NSGA-II: accuracy (a short-training proxy) against
latency predicted by a per-layer latency table measured on this device, under the budgets. Candidates over
a budget are never trained. The best candidates are then trained longer (successive halving, --rungs/--eta)
and the Pareto front, the chosen architecture (the most accurate on the front) and every trial land in
OUT/front.json with a plot OUT/pareto.png.

The study in --storage IS the checkpoint: re-run the same command and it continues to --trials. To spread
one search over machines, run the same command on each with a shared PostgreSQL URL and a different
--worker number (add --no-refine on all but one)."""

SEARCH_EPILOG = """example:
  ember compress search --family bench._compress_task:build_net --data mypkg.kws:splits \\
      --space width=0.25,0.5,0.75,1 --space depth=1,2,3,4 --space kernel=3,5 \\
      --latency-budget-ms 0.15 --memory-budget-kb 128 --energy-budget-mj 1 --trials 40 --out runs/nas
  (same, on two machines)  ... --storage postgresql://user@db-host/ember --worker 0   /  --worker 1 --no-refine"""

CASCADE_HELP = """Build a two-model cascade: the small model answers when its top softmax probability reaches a
threshold, the big one runs otherwise. The threshold is the cheapest whose accuracy loss against the big
model, plus a safety margin of --z standard errors, stays within --budget points on the validation split;
it is reported on a separate split (the data's 'test' split, else the second half of 'val'). OUT becomes
a model folder: the big model's variants, the small model and the cascade in the manifest ('exits'), which
ModelManager runs; a second threshold for a low battery (--low-battery-budget) is recorded for the
degradation ladder."""


def register(csub: Any) -> None:
    p = csub.add_parser("search", help="architecture search under latency, peak-memory and energy budgets",
                        description=SEARCH_HELP, epilog=SEARCH_EPILOG,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--family", required=True, metavar="MODULE:FUNCTION",
                   help="function(**knobs) returning a torch model, e.g. bench._compress_task:build_net")
    p.add_argument("--data", required=True, metavar="MODULE:FUNCTION",
                   help="function returning (train, val) (x, y) numpy arrays; val scores the candidates")
    p.add_argument("--space", action="append", default=[], metavar="KNOB=V1,V2,...", required=True,
                   help="choices of one knob (repeat per knob), e.g. --space width=0.25,0.5,1")
    p.add_argument("--latency-budget-ms", type=float, help="latency budget (ms, this device, 1 thread)")
    p.add_argument("--memory-budget-kb", type=float, help="peak activation memory budget (KiB)")
    p.add_argument("--energy-budget-mj", type=float, help="energy budget per inference (mJ, power table)")
    p.add_argument("--trials", type=int, default=30, help="trials the study should hold (default 30)")
    p.add_argument("--storage", metavar="URL", help="Optuna storage: postgresql://... shared by several "
                   "workers (default sqlite:///OUT/study.db)")
    p.add_argument("--study", default="ember-nas", help="study name in the storage (default ember-nas)")
    p.add_argument("--worker", type=int, default=0, help="worker number when several run one study (seeds differ)")
    p.add_argument("--no-refine", dest="refine", action="store_false",
                   help="only run trials (extra workers); the results still print the current front")
    p.add_argument("--epochs", type=int, default=9, help="epochs of full training; trials use a fraction")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--eta", type=int, default=3, help="successive halving: effort factor per rung (default 3)")
    p.add_argument("--rungs", type=int, default=1, help="refinement rungs after the search (default 1)")
    p.add_argument("--top", type=int, default=4, help="front members refined (default 4)")
    p.add_argument("--population", type=int, default=8, help="NSGA-II population (default 8)")
    p.add_argument("--input-shape", metavar="1xCxHxW", help="model input shape (default: batch 1 of the data)")
    p.add_argument("--lut", metavar="JSON", help="latency table file (default ~/.cache/ember/latency_lut.json)")
    p.add_argument("--device-class", help="device class for the energy figure (default: detected)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for front.json, pareto.png (and study.db)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_search)

    c = csub.add_parser("cascade", help="a small model first, the big one only when the small is unsure",
                        description=CASCADE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
                        epilog="example: ember compress cascade --small small.onnx --big big.onnx "
                        "--data mypkg.kws:splits --budget 0.5 --out models/kws-cascade")
    for who in ("small", "big"):
        c.add_argument(f"--{who}", required=True, metavar="MODEL",
                       help=f"the {who} model: an .onnx file or MODULE:FUNCTION returning a torch model")
        c.add_argument(f"--{who}-weights", metavar="FILE.pt", help=f"state dict for a MODULE:FUNCTION {who} model")
    c.add_argument("--data", required=True, metavar="MODULE:FUNCTION",
                   help="function returning (train, val) or {'val': (x, y), 'test': (x, y)}")
    c.add_argument("--budget", type=float, default=0.5, help="accuracy loss allowed, points (default 0.5)")
    c.add_argument("--low-battery-budget", type=float, default=2.0,
                   help="looser budget for the low-battery threshold (default 2.0 points)")
    c.add_argument("--z", type=float, default=2.0, help="safety margin in standard errors (default 2)")
    c.add_argument("--name", default="cascade", help="model name in the manifest")
    c.add_argument("--out", required=True, metavar="DIR", help="model folder to write")
    c.add_argument("--json", action="store_true", help="print the result as JSON")
    c.set_defaults(func=_cascade)


def _value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_space(items: list[str]) -> dict[str, list[Any]]:
    space: dict[str, list[Any]] = {}
    for item in items:
        knob, _, values = item.partition("=")
        choices = [_value(v.strip()) for v in values.split(",") if v.strip()]
        if not knob.strip() or not choices:
            raise ConfigError(f"--space {item!r}: write KNOB=V1,V2,... (e.g. width=0.25,0.5,1)")
        space[knob.strip()] = choices
    return space


def _arrays(data: Any, what: str) -> tuple[Any, Any]:
    import numpy as np

    if isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], np.ndarray):
        return data[0], data[1]
    raise ConfigError(f"--data: the {what} split must be (x, y) numpy arrays")


def _budgets(args: argparse.Namespace) -> Any:
    from sdk.compress.nas import Budgets

    for flag in ("latency_budget_ms", "memory_budget_kb", "energy_budget_mj"):
        v = getattr(args, flag)
        if v is not None and v <= 0:
            raise ConfigError(f"--{flag.replace('_', '-')} must be a positive number")
    return Budgets(args.latency_budget_ms, args.memory_budget_kb, args.energy_budget_mj)


def _search(args: argparse.Namespace, config: Any) -> int:
    import torch

    from sdk.compress.cli_jobs import load_spec
    from sdk.compress.latency_lut import LatencyTable
    from sdk.compress.nas import FitProxy, SearchSpec, search
    from sdk.util.jsonutil import dumps

    torch.set_num_threads(args.threads)
    family, space, budgets = load_spec(args.family, "--family"), parse_space(args.space), _budgets(args)
    data = load_spec(args.data, "--data")()
    train, val = (data["train"], data["val"]) if isinstance(data, dict) else data
    x_val, _ = _arrays(val, "val")
    shape = [int(d) for d in args.input_shape.lower().split("x")] if args.input_shape else [1, *x_val.shape[1:]]
    proxy = FitProxy(_arrays(train, "train"), val, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                     seed=args.seed)
    spec = SearchSpec(family, space, proxy, shape, budgets, lut=LatencyTable(args.lut),
                      device_class=args.device_class)
    res = search(spec, args.trials, storage=args.storage, out=args.out, study_name=args.study, seed=args.seed,
                 worker=args.worker, population=args.population, top=args.top, eta=args.eta, rungs=args.rungs,
                 do_refine=args.refine)
    if args.json:
        print(dumps(res.as_dict(), indent=2))
        return 0
    print(f"{len(res.trials)} architectures searched; front after refinement ({len(res.front)}):")
    for cand in res.front:
        mark = "*" if cand is res.chosen else " "
        print(f" {mark} {cand.knobs}  accuracy {cand.accuracy:.2f} %  {cand.costs['latency_ms']:.4f} ms  "
              f"{cand.costs['macs']:,} MACs  {cand.costs['peak_activation_bytes'] / 1024:.1f} KiB  "
              f"{cand.costs['energy_mj']:.4f} mJ")
    print(f"written: {Path(args.out) / 'front.json'}, {Path(args.out) / 'pareto.png'}")
    return 0


def _onnx(spec: str, weights: str | None, sample: Any, tmp: Path, who: str) -> Path:
    if spec.endswith(".onnx"):
        if not Path(spec).is_file():
            raise ConfigError(f"--{who} {spec}: file not found")
        return Path(spec)
    from sdk.compress.cli_jobs import load_model
    from sdk.compress.folder import export_onnx

    model = load_model(argparse.Namespace(model=spec, weights=weights))
    return export_onnx(model, tmp / f"{who}.onnx", sample)


def _cascade(args: argparse.Namespace, config: Any) -> int:
    import numpy as np

    from sdk.compress.cascade import cascade_costs, onnx_probs, select_cascade, write_cascade
    from sdk.compress.cli_jobs import load_spec
    from sdk.compress.exits import simulate
    from sdk.compress.folder import onnx_macs
    from sdk.models.variants import make_model_folder
    from sdk.util.jsonutil import dumps

    if args.budget < 0 or args.low_battery_budget < args.budget:
        raise ConfigError("--budget must be >= 0 and --low-battery-budget >= --budget")
    data = load_spec(args.data, "--data")()
    if isinstance(data, dict) and "test" in data:
        (xv, yv), (xt, yt), held = _arrays(data["val"], "val"), _arrays(data["test"], "test"), "test"
    else:
        x, y = _arrays(data["val"] if isinstance(data, dict) else data[1], "val")
        order = np.random.default_rng(0).permutation(len(x))
        a, b = order[: len(x) // 2], order[len(x) // 2:]
        (xv, yv), (xt, yt), held = (x[a], y[a]), (x[b], y[b]), "second half of val"
    with tempfile.TemporaryDirectory() as tmp:
        small = _onnx(args.small, args.small_weights, xv, Path(tmp), "small")
        big = _onnx(args.big, args.big_weights, xv, Path(tmp), "big")
        macs = [onnx_macs(small), onnx_macs(big)]
        pv = [onnx_probs(p, xv, progress=True) for p in (small, big)]
        pt = [onnx_probs(p, xt, progress=True) for p in (small, big)]
        choice = select_cascade(pv[0], pv[1], yv, *macs, budget_points=args.budget, z=args.z)
        low = select_cascade(pv[0], pv[1], yv, *macs, budget_points=args.low_battery_budget, z=args.z)
        make_model_folder(args.out, big, args.name, tiers=("fp32",))
        write_cascade(args.out, small, choice, *macs, args.budget, low, args.low_battery_budget)
    report = simulate(pt, yt, choice.threshold, cascade_costs(*macs))
    res = {"folder": args.out, "threshold": choice.threshold, "low_battery_threshold": low.threshold,
           "validation": choice.as_dict(), "held_out": {"split": held, **report.as_dict()},
           "small_macs": macs[0], "big_macs": macs[1]}
    if args.json:
        print(dumps(res, indent=2))
        return 0
    print(f"threshold {choice.threshold:.4f} (low battery {low.threshold:.4f}), chosen on {choice.n} validation samples")
    print(f"held out ({held}, {report.n}): accuracy {report.accuracy:.2f} % vs big {report.reference_accuracy:.2f} % "
          f"(loss {report.loss_points:.2f} points, budget {args.budget}); small answers {report.exit_rates[0]:.1%}; "
          f"average MACs {report.avg_cost:,.0f} of {report.full_cost:,.0f} ({report.saved:.1%} saved)")
    print(f"written: {args.out} (manifest 'exits'; run it with ModelManager)")
    return 0
