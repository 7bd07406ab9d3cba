"""What ``ember compress`` runs: load the ``module:function`` specs, compress, fine-tune, write the folder.

Each technique is one ``register_jobs`` entry (parser options + a ``run(args, model, train, val)``
returning the compressed model and a dict of facts for the manifest and the printed result).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sdk.errors import ConfigError, ModelError

Job = Callable[[argparse.Namespace, Any, Any, Any], tuple[Any, dict[str, Any]]]
JOBS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], str]] = {}


def load_spec(spec: str, what: str) -> Callable[..., Any]:
    """``module:function`` -> the function (the current directory is importable, like ``python -m``)."""
    mod, _, fn = spec.partition(":")
    if not mod or not fn:
        raise ConfigError(f"{what} must be MODULE:FUNCTION (e.g. mypkg.nets:small_cnn), got {spec!r}")
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        return getattr(importlib.import_module(mod), fn)  # type: ignore[no-any-return]
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"{what} {spec!r} cannot be loaded: {e}") from None


def load_model(args: argparse.Namespace) -> Any:
    import torch

    model = load_spec(args.model, "--model")()
    if not isinstance(model, torch.nn.Module):
        raise ConfigError(f"--model {args.model} returned {type(model).__name__}, not a torch.nn.Module")
    if args.weights:
        try:
            state = torch.load(args.weights, weights_only=True)
            model.load_state_dict(state.get("model", state) if isinstance(state, dict) else state)
        except (OSError, RuntimeError, KeyError) as e:
            raise ModelError(f"--weights {args.weights}: cannot load into {args.model} "
                             f"({str(e).splitlines()[0][:200]})") from None
    return model.eval()


def load_data(args: argparse.Namespace) -> tuple[Any, Any]:
    data = load_spec(args.data, "--data")()
    if isinstance(data, dict) and {"train", "val"} <= set(data):
        return data["train"], data["val"]
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return data[0], data[1]
    raise ConfigError(f"--data {args.data} must return (train, val) or {{'train': ..., 'val': ...}}")


def register_jobs(csub: Any, add_common: Callable[[argparse.ArgumentParser], None]) -> None:
    for name, (help_text, add_options, target) in JOBS.items():
        p = csub.add_parser(name, help=help_text, description=help_text)
        add_common(p)
        add_options(p)
        p.set_defaults(func=_runner(target))


def _runner(target: str) -> Callable[[argparse.Namespace, Any], int]:
    def run(args: argparse.Namespace, config: Any) -> int:
        import torch

        from sdk.compress.folder import write_folder
        from sdk.util.jsonutil import dumps

        torch.set_num_threads(args.threads)
        torch.manual_seed(args.seed)
        mod, _, fn = target.partition(":")
        job: Job = getattr(importlib.import_module(mod), fn)
        model, (train, val) = load_model(args), load_data(args)
        args.work = Path(args.work or Path(args.out) / ".compress")
        compressed, facts = job(args, model, train, val)
        res = write_folder(compressed, args.out, val, name=args.name or args.model.partition(":")[2],
                           labels=[s.strip() for s in args.labels.split(",")] if args.labels else (),
                           facts=facts, int8_onnx=facts.pop("_int8_onnx", None))
        print(dumps(res, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in res.items()))
        return 0

    return run


def _checkpoint(args: argparse.Namespace, name: str) -> Path:
    return Path(args.work) / f"{name}.pt"


def _fit(args: argparse.Namespace, model: Any, train: Any, name: str, **kw: Any) -> Any:
    from sdk.compress.train import fit

    return fit(model, train, args.epochs, args.lr, checkpoint=_checkpoint(args, name), resume=not args.restart,
               seed=args.seed, batch_size=args.batch_size, desc=name, **kw)


def _sample(data: Any, n: int = 256) -> Any:
    from sdk.compress.folder import _arrays

    return _arrays(data, n)[0]


def run_prune(args: argparse.Namespace, model: Any, train: Any, val: Any) -> tuple[Any, dict[str, Any]]:
    from sdk.compress.prune import prune, prune_schedule, torch_macs

    x = _sample(val, 1)
    before = torch_macs(model, x)
    if args.ratio is not None:
        out = prune_schedule(model, train, x, args.ratio, steps=args.steps, epochs=args.epochs, lr=args.lr,
                             method=args.method, seed=args.seed, checkpoint_dir=None if args.restart else args.work,
                             multiple=args.multiple)
    else:
        out = prune(model, x, macs=args.macs, latency_ms=args.latency_ms, method=args.method, data=train,
                    multiple=args.multiple)
        _fit(args, out, train, "prune")
    return out, {"technique": "prune", "method": args.method, "ratio": getattr(out, "prune_ratio", args.ratio),
                 "macs_before": before}


def run_qat(args: argparse.Namespace, model: Any, train: Any, val: Any) -> tuple[Any, dict[str, Any]]:
    from sdk.compress.qat import export_qdq, float_model, quantize_aware

    q = quantize_aware(model, _sample(train, args.calib_samples))
    _fit(args, q, train, "qat")
    path = export_qdq(q, Path(args.work) / "qat.int8.onnx", _sample(val, 1))
    return float_model(q), {"technique": "qat", "scheme": "int8 QDQ: per-channel symmetric weights, per-tensor "
                            "asymmetric activations (learned)", "_int8_onnx": path}


def run_distill(args: argparse.Namespace, model: Any, train: Any, val: Any) -> tuple[Any, dict[str, Any]]:
    from sdk.compress.distill import Distiller, OnnxTeacher

    if args.teacher.endswith(".onnx"):
        teacher = OnnxTeacher(args.teacher)
    else:
        teacher = load_model(argparse.Namespace(model=args.teacher, weights=args.teacher_weights))
    hint = tuple(args.hint.split(",")) if args.hint else None
    if hint is not None and len(hint) != 2:
        raise ConfigError("--hint is STUDENT_LAYER,TEACHER_LAYER (module names, e.g. 3.pw,3.pw)")
    kd = Distiller(teacher, args.temperature, args.alpha, hint)  # type: ignore[arg-type]
    kd.attach(model)
    _fit(args, model, train, "distill", loss_fn=kd)
    kd.detach(model)
    return model, {"technique": "distill", "teacher": args.teacher, "temperature": args.temperature,
                   "alpha": args.alpha, "hint": args.hint}


def run_factorize(args: argparse.Namespace, model: Any, train: Any, val: Any) -> tuple[Any, dict[str, Any]]:
    from sdk.compress.lowrank import factorize

    out, report = factorize(model, rank=args.rank, energy=args.energy, method=args.method)
    _fit(args, out, train, "factorize")
    return out, {"technique": "factorize", "method": args.method, "rank": args.rank, "energy": args.energy,
                 "layers": report}


def run_cluster(args: argparse.Namespace, model: Any, train: Any, val: Any) -> tuple[Any, dict[str, Any]]:
    from sdk.compress.cluster import cluster_weights, distinct_values

    out, books = cluster_weights(model, args.clusters)
    books.attach(out)
    _fit(args, out, train, "cluster", after_step=books.snap)
    books.detach()
    return out, {"technique": "cluster", "clusters": args.clusters, **books.size_bytes(out),
                 "max_distinct_values": max(distinct_values(out)[n] for n in books.assignments)}


def _prune_opts(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--ratio", type=float, help="fraction of the channels of every prunable group to remove")
    g.add_argument("--macs", type=int, help="prune until one inference costs at most this many MACs")
    g.add_argument("--latency-ms", type=float, help="prune until the exported ONNX runs this fast here (1 thread)")
    p.add_argument("--method", default="l1", choices=("l1", "activation", "taylor"),
                   help="channel score: filter L1 norm, mean |activation| or |activation x gradient| (default l1)")
    p.add_argument("--steps", type=int, default=1, help="with --ratio: prune -> fine-tune rounds (default 1)")
    p.add_argument("--multiple", type=int, default=1, help="keep channel counts at multiples of N (8 or 16 suit "
                   "the runtimes' blocked kernels; default 1)")


def _qat_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calib-samples", type=int, default=256, help="training samples that initialise the ranges")


def _distill_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--teacher", required=True, help="teacher: MODULE:FUNCTION (torch) or FILE.onnx (ONNX Runtime)")
    p.add_argument("--teacher-weights", metavar="FILE.pt", help="state dict for a torch teacher")
    p.add_argument("--temperature", type=float, default=4.0, help="softening temperature (default 4)")
    p.add_argument("--alpha", type=float, default=0.7, help="weight of the teacher term vs the labels (default 0.7)")
    p.add_argument("--hint", metavar="S,T", help="feature distillation: student layer, teacher layer (torch teacher)")


def _factorize_opts(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--rank", type=int, help="rank of every factorized layer")
    g.add_argument("--energy", type=float, help="keep this fraction of each weight's squared singular values")
    p.add_argument("--method", choices=("svd", "tucker2"), default="svd", help="svd: k x k (r filters) + 1x1; "
                   "tucker2: 1x1 + k x k core + 1x1 (HOSVD; 1x1 and linear layers use svd) (default svd)")


def _cluster_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clusters", type=int, default=16, help="shared values per layer (default 16)")


JOBS.update({
    "prune": ("remove whole channels (coupled layers handled), then fine-tune", _prune_opts,
              "sdk.compress.cli_jobs:run_prune"),
    "qat": ("quantization-aware training; the int8 tier keeps the learned scales", _qat_opts,
            "sdk.compress.cli_jobs:run_qat"),
    "distill": ("train the model as a student of a teacher (torch or ONNX)", _distill_opts,
                "sdk.compress.cli_jobs:run_distill"),
    "factorize": ("SVD low-rank factorization of conv / linear layers, then fine-tune", _factorize_opts,
                  "sdk.compress.cli_jobs:run_factorize"),
    "cluster": ("k-means weight sharing per layer, fine-tuned with the codebooks kept", _cluster_opts,
                "sdk.compress.cli_jobs:run_cluster"),
})
