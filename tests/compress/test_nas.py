"""Architecture search with Optuna's NSGA-II: budgets as constraints, refinement, resume, and two worker
processes sharing one study in a real PostgreSQL. The accuracy proxy is a stand-in (tests never train);
costs are real (ONNX export, per-layer table timed by ONNX Runtime)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("optuna")

from sdk.compress.latency_lut import LatencyTable
from sdk.compress.nas import Budgets, SearchSpec, open_study, pareto, search
from sdk.errors import ConfigError
from tests.compress._search_stub import INPUT_SHAPE, ParamsProxy, tiny_net

REPO = Path(__file__).resolve().parents[2]
SPACE = {"width": [4, 8, 16, 32], "depth": [1, 2, 3], "kernel": [3, 5]}


@pytest.fixture(scope="module")
def lut(tmp_path_factory: pytest.TempPathFactory) -> LatencyTable:
    table = LatencyTable(tmp_path_factory.mktemp("lut") / "lut.json", runs=10, min_time_s=0.0)
    table.fit([tiny_net(4, 1), tiny_net(16, 2), tiny_net(32, 3)], INPUT_SHAPE)
    return table


def spec(lut: LatencyTable, proxy: ParamsProxy, memory_kb: float | None = 20.0) -> SearchSpec:
    return SearchSpec(tiny_net, SPACE, proxy, INPUT_SHAPE, Budgets(memory_kb=memory_kb), lut=lut)


def test_search_respects_budgets_refines_the_front_and_writes_json_and_plot(lut: LatencyTable,
                                                                             tmp_path: Path) -> None:
    proxy = ParamsProxy()
    r = search(spec(lut, proxy), trials=6, out=tmp_path, population=4, top=3, eta=2, rungs=1, progress=False)
    over = [c for c in r.trials if not c.feasible]
    assert over, "the 20 KiB peak-memory budget should rule out the widest nets"
    assert all(c.costs["peak_activation_bytes"] > 20 * 1024 and c.accuracy == 0 for c in over)
    assert all(c.costs["peak_activation_bytes"] <= 20 * 1024 for c in r.front)
    # the search trained feasible trials at effort 1/2, then refined up to 3 of the front at effort 1
    assert proxy.calls.count(0.5) == len({json.dumps(c.knobs) for c in r.trials if c.feasible})
    assert 1 <= proxy.calls.count(1.0) <= 3 and all(c.effort == 1.0 for c in r.front)
    assert r.front == pareto(r.front) and r.chosen == max(r.front, key=lambda c: c.accuracy)
    saved = json.loads((tmp_path / "front.json").read_text())
    assert saved["chosen"]["knobs"] == r.chosen.knobs and len(saved["trials"]) == len(r.trials)
    assert (tmp_path / "pareto.png").read_bytes()[:4] == b"\x89PNG"


def test_search_is_seeded_and_resumes_from_its_storage(lut: LatencyTable, tmp_path: Path) -> None:
    first = ParamsProxy()
    a = search(spec(lut, first), trials=3, out=tmp_path / "a", population=4, rungs=1, eta=2, progress=False)
    again = ParamsProxy()
    b = search(spec(lut, again), trials=6, out=tmp_path / "a", population=4, rungs=1, eta=2, progress=False)
    assert [c.trial for c in b.trials][:len(a.trials)] == [c.trial for c in a.trials]
    assert [c.knobs for c in b.trials][:len(a.trials)] == [c.knobs for c in a.trials]
    import optuna

    study = optuna.load_study(study_name="ember-nas", storage=f"sqlite:///{tmp_path / 'a' / 'study.db'}")
    assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 6
    assert 0.5 in first.calls and len(again.calls) <= 3 + 4  # 3 new trials + refinement: the first 3 not rerun
    fresh = search(spec(lut, ParamsProxy()), trials=2, out=tmp_path / "c", population=4, do_refine=False,
                   progress=False)
    assert [c.knobs for c in fresh.trials] == [c.knobs for c in a.trials][:2]  # same seed, same proposals


def test_reopening_a_study_with_other_budgets_is_refused(lut: LatencyTable, tmp_path: Path) -> None:
    search(spec(lut, ParamsProxy()), trials=2, out=tmp_path, population=4, do_refine=False, progress=False)
    with pytest.raises(ConfigError, match="other budgets"):
        search(spec(lut, ParamsProxy(), memory_kb=80), trials=3, out=tmp_path, do_refine=False, progress=False)
    with pytest.raises(ConfigError, match="not reachable"):
        open_study("postgresql://nobody@127.0.0.1:1/none", "x")
    with pytest.raises(ConfigError, match="at least one choice"):
        search(SearchSpec(tiny_net, {"width": []}, ParamsProxy(), INPUT_SHAPE, lut=lut), trials=2, out=tmp_path)


WORKER = textwrap.dedent("""
    import sys, time
    from sdk.compress.latency_lut import LatencyTable
    from sdk.compress.nas import Budgets, SearchSpec, open_study, search
    from tests.compress._search_stub import INPUT_SHAPE, ParamsProxy, tiny_net
    url, worker, lut_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    budgets = Budgets(memory_kb=20.0)
    study = open_study(url, "shared", worker=worker, budgets=budgets)
    study.set_user_attr(f"ready{worker}", True)     # start together, so that both take trials
    deadline = time.monotonic() + 60
    while not all(study.user_attrs.get(f"ready{w}") for w in (0, 1)) and time.monotonic() < deadline:
        time.sleep(0.1)
        study = open_study(url, "shared", worker=worker)
    spec = SearchSpec(tiny_net, {"width": [4, 8, 16, 32], "depth": [1, 2, 3], "kernel": [3, 5]},
                      ParamsProxy(sleep_s=0.2), INPUT_SHAPE, budgets, lut=LatencyTable(lut_path))
    search(spec, trials=6, storage=url, study_name="shared", worker=worker, population=4, do_refine=False,
           progress=False)
""")


def test_two_workers_share_one_study_in_postgresql(postgres_url: str, lut: LatencyTable) -> None:
    import optuna

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, postgres_url, str(w), str(lut.path)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for w in (0, 1)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    from sdk.compress.nas import storage_url

    study = optuna.load_study(study_name="shared", storage=storage_url(postgres_url))
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert 6 <= len(done) <= 7  # each worker stops once the study holds 6; one may be mid-trial then
    assert len(study.trials) == len(done)  # nothing left running or failed
    workers = {t.user_attrs["worker"].split(":")[0] + ":" + t.user_attrs["worker"].split(":")[1] for t in done}
    assert len(workers) == 2, workers  # both processes contributed
    assert sorted(t.number for t in study.trials) == list(range(len(study.trials)))
    for t in done:
        assert set(t.params) == {"width", "depth", "kernel"} and len(t.values) == 2
        assert t.user_attrs["costs"]["latency_ms"] == pytest.approx(t.values[1])
        assert (t.values[0] == 0) == (not t.user_attrs["trained"])


def test_cli_search_explains_itself_and_refuses_bad_knobs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from sdk.cli import main

    with pytest.raises(SystemExit):
        main(["compress", "search", "--help"])
    text = capsys.readouterr().out
    assert "NSGA-II" in text and "--latency-budget-ms" in text and "postgresql" in text
    args = ["compress", "search", "--family", "tests.compress._search_stub:tiny_net", "--data",
            "tests.compress._search_stub:cascade_data", "--out", str(tmp_path)]
    assert main([*args, "--space", "width"]) == 2
    assert "KNOB=V1,V2" in capsys.readouterr().err
    assert main([*args, "--space", "width=4,8", "--memory-budget-kb", "-3"]) == 2
    assert "must be a positive number" in capsys.readouterr().err
