"""``ember compress prune|qat|distill|factorize|cluster ...``: training-time compression of a torch model.

Every subcommand takes the model as ``module:function`` (returns a ``torch.nn.Module``; ``--weights``
loads a state dict into it) and the data as ``module:function`` (returns ``(train, val)``: each
``(x, y)`` numpy arrays or an iterable of ``(x, y)`` batches), fine-tunes through
:func:`sdk.compress.fit` (seeded; ``--work`` keeps a checkpoint per epoch, so re-running the same
command resumes) and writes a model folder (ONNX tiers + manifest) with ``--out``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
from typing import Any


def add_common(p: argparse.ArgumentParser) -> None:
    """Options every ``ember compress`` subcommand shares (the search subcommands use them too)."""
    p.add_argument("--model", required=True, metavar="MODULE:FUNCTION",
                   help="function returning the torch model to compress, e.g. mypkg.nets:small_cnn")
    p.add_argument("--weights", metavar="FILE.pt", help="state dict to load into the model first")
    p.add_argument("--data", required=True, metavar="MODULE:FUNCTION",
                   help="function returning (train, val): (x, y) numpy arrays or iterables of (x, y) batches")
    p.add_argument("--out", required=True, metavar="DIR", help="model folder to write (ONNX tiers + manifest)")
    p.add_argument("--work", metavar="DIR", help="checkpoints (default OUT/.compress); re-running resumes")
    p.add_argument("--restart", action="store_true", help="ignore existing checkpoints and start over")
    p.add_argument("--epochs", type=int, default=3, help="fine-tuning epochs (default 3)")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate, cosine decay (default 1e-3)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--name", help="model name in the manifest (default: the function's name)")
    p.add_argument("--labels", help="comma-separated class labels for the manifest")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def register(sub: Any) -> None:
    p = sub.add_parser("compress", help="prune, quantization-aware train, distill, factorize or cluster a torch "
                       "model, fine-tuned, into a model folder",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    csub = p.add_subparsers(dest="technique", metavar="TECHNIQUE", title="techniques")
    from sdk.compress.cli_jobs import register_jobs

    register_jobs(csub, add_common)
    # --- hook: architecture search / early exit / cascades (helper "search"; the lead wires it at merge) ---
    if importlib.util.find_spec("sdk.cli.compress_search") is not None:
        importlib.import_module("sdk.cli.compress_search").register(csub)
    p.set_defaults(func=lambda args, config: p.print_help() or 0)
