"""A few seconds of seeded fuzzing: mutated .onnx, .tflite and manifest files through the ONNX Runtime and
LiteRT backends, `ember profile`, `ember export-c`, ModelStore and ModelManager end in a typed Ember error
(or run), never an untyped exception, a crash or a hang. ``bench/fuzz.py`` runs the same on thousands."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fuzz():
    spec = importlib.util.spec_from_file_location("ember_bench_fuzz", REPO / "bench" / "fuzz.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def seeds(fuzz, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    return fuzz.make_seeds(tmp_path_factory.mktemp("seeds"))


def test_seeds_are_valid_so_mutations_start_from_working_files(fuzz, seeds, tmp_path: Path) -> None:
    for kind, paths in seeds.items():
        for path in paths:
            assert fuzz.run_case(kind, next(iter(fuzz.TARGETS[kind])), path) == ("ran", ""), path


def test_mutations_are_seeded_and_change_the_file(fuzz, seeds, tmp_path: Path) -> None:
    a = fuzz.cases(seeds, 9, seed=7, folder=tmp_path / "a")
    b = fuzz.cases(seeds, 9, seed=7, folder=tmp_path / "b")
    assert [p.read_bytes() for _, p in a] == [p.read_bytes() for _, p in b]
    originals = {p.read_bytes() for ps in seeds.values() for p in ps}
    assert sum(p.read_bytes() not in originals for _, p in a) >= 8


def test_mutated_files_give_typed_errors_only(fuzz, seeds, tmp_path: Path) -> None:
    items = fuzz.cases(seeds, 36, seed=2024, folder=tmp_path / "cases")
    totals, per_target, problems = fuzz.run_all(items, workers=1, timeout=60)
    assert problems == []  # each would name the file, target and exception
    assert totals["untyped"] == totals["crash"] == totals["hang"] == 0
    assert totals["typed_error"] > 0 and totals["ran"] + totals["typed_error"] == sum(totals.values())
    assert set(per_target) == {f"{k}:{t}" for k, ts in fuzz.TARGETS.items() for t in ts}
