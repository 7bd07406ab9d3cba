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
