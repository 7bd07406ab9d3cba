"""The committed benchmark results: each records the code it ran on, and every number the README's
benchmark table quotes is the one in its JSON (no hand-copied or stale figures)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "bench" / "results"
NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?")

Fmt = str | Callable[[Any], str]
# README benchmark table row (its first cell) -> every number its result cell quotes:
# (results file, path in the JSON, how the README prints it). Paths: dict keys and list indices
# joined by ".", or "key=value" for the list element whose key has that value.
QUOTES: dict[str, list[tuple[str, str, Fmt]]] = {}


def resolve(doc: Any, path: str) -> Any:
    for part in path.split("."):
        if "=" in part:
            key, value = part.split("=", 1)
            doc = next(d for d in doc if str(d.get(key)) == value)
        elif isinstance(doc, list):
            doc = doc[int(part)]
        else:
            doc = doc[part]
    return doc


def render(value: Any, fmt: Fmt) -> str:
    return fmt(value) if callable(fmt) else fmt.format(value)


def table_rows() -> dict[str, str]:
    """{row name: result cell} of the table in README's "## Benchmarks" section."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Benchmarks", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and line.startswith("|") and not set(cells[0]) <= {"-"} and cells[0] != "what":
            rows[cells[0]] = cells[2]
    return rows


@pytest.mark.parametrize("path", sorted(RESULTS.glob("*.json")), ids=lambda p: p.name)
def test_every_result_records_the_commit_it_ran_on_and_a_clean_tree(path: Path):
    doc = json.loads(path.read_text())
    git = doc.get("git")
    assert isinstance(git, dict) and re.fullmatch(r"[0-9a-f]{40}", str(git.get("commit"))), (
        f"{path.name}: no git commit recorded; re-run the bench (bench/_util.write_result adds it)")
    assert git.get("dirty") is False, f"{path.name}: ran on uncommitted code; commit, then re-run the bench"
    assert "load" in doc and len(doc["load"]["before"]) == 3, f"{path.name}: machine load not recorded"


def test_the_readme_table_has_rows_and_each_row_is_checked():
    rows = table_rows()
    assert len(rows) >= 5
    missing = sorted(set(rows) - set(QUOTES))
    assert not missing, f"README benchmark rows without a QUOTES entry in {__file__}: {missing}"


@pytest.mark.parametrize("row", sorted(QUOTES))
def test_each_number_in_a_readme_row_is_the_one_in_the_committed_json(row: str):
    cell = table_rows().get(row)
    assert cell is not None, f"README benchmark table has no row {row!r}"
    expected = []
    for name, path, fmt in QUOTES[row]:
        doc = json.loads((RESULTS / f"{name}.json").read_text())
        expected.append(render(resolve(doc, path), fmt))
    quoted = NUMBER.findall(cell)
    for value in expected:
        assert value in quoted, f"{row!r}: the JSON says {value}, the README row quotes {quoted}"
    unchecked = [q for q in quoted if q not in expected]
    assert not unchecked, f"{row!r}: numbers {unchecked} in the README come from no JSON field in QUOTES"
