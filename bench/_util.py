"""Shared helpers for the benchmark scripts: every bench prints one JSON object and writes it
to ``bench/results/<name>.json``."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
REPO = RESULTS.parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def machine() -> dict[str, Any]:
    return {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d")}


def write_result(name: str, result: dict[str, Any]) -> dict[str, Any]:
    """Add machine info, print the JSON object and write ``bench/results/<name>.json``."""
    result = {**result, "env": machine()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2, sort_keys=False, default=float)
    (RESULTS / f"{name}.json").write_text(text + "\n")
    print(text)
    return result
