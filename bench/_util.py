"""Shared helpers for the benchmark scripts: every bench prints one JSON object and writes it
to ``bench/results/<name>.json`` with the machine, its load and the git commit it ran on.

``git.dirty`` is true when tracked code (``sdk/``, ``bench/``, ``firmware_export/``, ``apps/``,
``pyproject.toml``; not ``bench/results``) differed from that commit at the start or the end of the
run, or the commit changed meanwhile: the numbers then belong to no commit.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
REPO = RESULTS.parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from sdk.util.jsonutil import dumps  # after the path set-up above

CODE_PATHS = ("sdk", "bench", "firmware_export", "apps", "pyproject.toml")


def git_state() -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` for the code the bench runs."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True,
                              check=True, timeout=30).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS,
                      ":(exclude)bench/results")
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(changed)}


_AT_START = git_state()


def load() -> dict[str, Any]:
    """How busy the machine is: 1/5/15-minute load averages over the CPUs this process may use."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"loadavg": [round(v, 2) for v in os.getloadavg()], "cpus": cpus}


def machine() -> dict[str, Any]:
    return {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d"), "time_utc": time.strftime("%H:%M", time.gmtime())}


def write_result(name: str, result: dict[str, Any], load_before: dict[str, Any] | None = None) -> dict[str, Any]:
    """Add machine, load (before/after) and git info, print the JSON object and write
    ``bench/results/<name>.json``."""
    after, now = load(), git_state()
    same = now["commit"] == _AT_START["commit"]
    git = {"commit": now["commit"], "dirty": None if now["dirty"] is None else
           bool(now["dirty"] or _AT_START["dirty"] or not same)}
    result = {**result, "env": machine(), "git": git,
              "load": {"before": (load_before or after)["loadavg"], "after": after["loadavg"]}}
    RESULTS.mkdir(parents=True, exist_ok=True)
    text = dumps(result, indent=2)
    (RESULTS / f"{name}.json").write_text(text + "\n")
    print(text)
    return result


def parser(doc: str | None) -> argparse.ArgumentParser:
    """The argument parser of a bench script: ``--help`` prints the script's docstring (what it measures
    and how) instead of running it."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter,
                                   epilog="Prints one JSON object and writes it to bench/results/ with the git "
                                          "commit it ran on.")
