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
NUMBER = re.compile(r"(?<![\w.,])\d+(?:,\d{3})*(?:\.\d+)?")  # 7, 0.51, 10,000; not the 8 of int8

Fmt = str | Callable[[Any], str]
def mega(v: Any) -> str:
    return f"{v / 1e6:.0f}"


def count(v: Any) -> str:
    return str(len(v))


def thousands(v: Any) -> str:
    return f"{v / 1e3:.0f}"


B = "models.name=builtin-bars64."
F = "models.name=builtin-finebars48-nobn."


def _tier(tiers: list[dict[str, Any]], key: str) -> dict[str, Any]:
    return next(t for t in tiers if t["tier"] == key)


def _paired(targets: dict[str, Any], tier: str) -> dict[str, Any]:
    """optimize_public: an int8 tier's round-by-round speed-up over fp32 (same backend)."""
    return _tier(targets["yolox_int8_within_1pt_and_1.5x"]["int8_tiers"], tier)["speedup_per_round"]


def fast_p95(latency: dict[str, dict[str, dict[str, float]]]) -> list[float]:
    return [t["p95_ms"] for b in ("onnxruntime", "litert") for t in latency[b].values()]


# README benchmark table row (its first cell) -> every number its result cell quotes:
# (results file, path in the JSON, how the README prints it). Paths: dict keys and list indices
# joined by ".", or "key=value" for the list element whose key has that value.
QUOTES: dict[str, list[tuple[str, str, Fmt]]] = {
    "pipeline overhead": [
        ("pipeline_overhead", "one_core.threads", "{}"),
        ("pipeline_overhead", "one_core.ember_fps", "{:.1f}"), ("pipeline_overhead", "one_core.bare_fps", "{:.1f}"),
        ("pipeline_overhead", "one_core.ratio", "{:.2f}"), ("pipeline_overhead", "rounds", "{}"),
        ("pipeline_overhead", "one_core.ratio_quartiles.0", "{:.2f}"),
        ("pipeline_overhead", "one_core.ratio_quartiles.1", "{:.2f}"),
        ("pipeline_overhead", "load.before.0", "{:.1f}"),
        ("pipeline_overhead", "one_core.cpu_ms_per_frame.ember", "{:.2f}"),
        ("pipeline_overhead", "one_core.cpu_ms_per_frame.bare", "{:.2f}"),
        ("pipeline_overhead", "one_core.cpu_ratio", "{:.2f}"),
        ("pipeline_overhead", "two_cores.threads", "{}"), ("pipeline_overhead", "two_cores.ratio", "{:.2f}"),
        ("pipeline_overhead", "two_cores.ratio_quartiles.0", "{:.2f}"),
        ("pipeline_overhead", "two_cores.ratio_quartiles.1", "{:.2f}"),
        ("pipeline_overhead", "two_cores.cpu_ms_per_frame.ember", "{:.2f}"),
        ("pipeline_overhead", "two_cores.cpu_ms_per_frame.bare", "{:.2f}"),
        ("pipeline_overhead", "noop_pipeline_items_per_s.one_core", thousands),
        ("pipeline_overhead", "model.macs", mega),
    ],
    "backends": [
        ("backends", "macs", mega), ("backends", "rounds", "{}"),
        ("backends", "latency.onnxruntime.fp32.p50_ms", "{:.2f}"), ("backends", "latency.onnxruntime.fp16.p50_ms", "{:.2f}"),
        ("backends", "latency.onnxruntime.int8.p50_ms", "{:.2f}"), ("backends", "latency.litert.fp32.p50_ms", "{:.2f}"),
        ("backends", "latency.litert.int8.p50_ms", "{:.2f}"), ("backends", "latency.tinygrad.fp32.p50_ms", "{:.0f}"),
        ("backends", "latency", lambda v: f"{min(fast_p95(v)):.0f}"),
        ("backends", "latency", lambda v: f"{max(fast_p95(v)):.0f}"),
        ("backends", "load.before.0", "{:.1f}"),
    ],
    "tier switching": [
        ("tier_switch", "script.fps", "{}"), ("tier_switch", "model.macs", mega), ("tier_switch", "budget_ms", "{:.0f}"),
        ("tier_switch", "script.burner_processes", "{}"),
        ("tier_switch", "summary.pinned_fp32.spike_infer_p95_ms.0", "{:.0f}"),
        ("tier_switch", "summary.pinned_fp32.spike_infer_p95_ms.1", "{:.0f}"),
        ("tier_switch", "runs.switching", count),
        ("tier_switch", "summary.switching.dropped.0", "{}"), ("tier_switch", "summary.switching.dropped.1", "{}"),
        ("tier_switch", "runs.switching.0.frames", "{}"),
        ("tier_switch", "summary.pinned_fp32.dropped.0", "{}"), ("tier_switch", "summary.pinned_fp32.dropped.1", "{}"),
        ("tier_switch", "switching_dropped_in_switch_windows_vs_pinned.0.0", "{}"),
        ("tier_switch", "switching_dropped_in_switch_windows_vs_pinned.1.0", "{}"),
        ("tier_switch", "switching_dropped_in_switch_windows_vs_pinned.0.1", "{}"),
        ("tier_switch", "switching_dropped_in_switch_windows_vs_pinned.1.1", "{}"),
        ("tier_switch", "runs.switching.0.flaps", "{}"),
        ("tier_switch", "runs.switching.0.switch_log.1.t_s", "{:.0f}"),
        ("tier_switch", "load.before.0", "{:.1f}"),
    ],
    "optimization": [
        ("optimize", B + "macs", mega),
        ("optimize", B + "tiers.tier=fp32/onnxruntime.accuracy", "{:.1f}"),
        ("optimize", B + "tiers.tier=fp32/onnxruntime.latency_ms", "{:.2f}"),
        ("optimize", B + "tiers.tier=int8/onnxruntime.accuracy", "{:.1f}"),
        ("optimize", B + "tiers.tier=int8/onnxruntime.latency_ms", "{:.2f}"),
        ("optimize", B + "tiers.tier=int8/onnxruntime.speedup_vs_fp32", "{:.1f}"),
        ("optimize", B + "tiers.tier=int8/litert.accuracy", "{:.1f}"),
        ("optimize", B + "tiers.tier=int8/litert.latency_ms", "{:.2f}"),
        ("optimize", B + "tiers.tier=int8/litert.speedup_vs_fp32", "{:.1f}"),
        ("optimize", B + "tiers.tier=int8/litert.size_bytes", lambda v: f"{v / 1e6:.2f}"),
        ("optimize", B + "tiers.tier=fp32/onnxruntime.size_bytes", lambda v: f"{v / 1e6:.2f}"),
        ("optimize", B + "tiers.tier=int8/onnxruntime.accuracy_drop_pts", "{:.1f}"),
        ("optimize", B + "spread.drop_pts_range.int8/onnxruntime.0", lambda v: f"{abs(v):.1f}"),
        ("optimize", B + "spread.drop_pts_range.int8/onnxruntime.1", lambda v: f"{abs(v):.1f}"),
        ("optimize", B + "spread.eval_seeds", count),
        ("optimize", F + "macs", mega),
        ("optimize", F + "tiers.tier=int8/onnxruntime.accuracy_drop_pts", "{:.1f}"),
        ("optimize", F + "spread.drop_pts_range.int8/onnxruntime.0", "{:.1f}"),
        ("optimize", F + "spread.drop_pts_range.int8/onnxruntime.1", "{:.1f}"),
        ("optimize", F + "tiers.tier=int8-mixed/onnxruntime.accuracy_drop_pts", lambda v: f"{abs(v):.1f}"),
        ("optimize", F + "tiers.tier=int8-mixed/onnxruntime.speedup_vs_fp32", "{:.1f}"),
        ("optimize", "load.before.0", "{:.1f}"),
    ],
    "telemetry cost": [
        ("telemetry", "stats_by_kind.image.cpu_us_per_frame", "{:.0f}"),
        ("telemetry", "stats_by_kind.image.wall_us_per_frame", "{:.0f}"), ("telemetry", "load.before.0", "{:.1f}"),
        ("telemetry", "stats_by_kind.image.spooled_with_fsync", "{}"), ("telemetry", "publish_cpu_percent", "{:.2f}"),
    ],
    "fuzzing": [
        ("fuzz", "files", "{:,}"), ("fuzz", "files_per_kind.onnx", "{}"), ("fuzz", "files_per_kind.tflite", "{}"),
        ("fuzz", "files_per_kind.manifest", "{}"), ("fuzz", "runs", "{:,}"),
        ("fuzz", "outcomes.untyped", "{}"), ("fuzz", "outcomes.crash", "{}"), ("fuzz", "outcomes.hang", "{}"),
        ("fuzz", "outcomes.ran", "{}"), ("fuzz", "outcomes.typed_error", "{:,}"),
    ],
    "public models": [
        ("optimize_public", "models.name=melspectrogram.tiers.tier=fp16/onnxruntime.score", "{:.1f}"),
        ("optimize_public", "models.name=yolox_nano.tiers.tier=fp32/onnxruntime.score", "{:.1f}"),
        ("optimize_public", "models.name=yolox_nano.tiers.tier=fp32/litert.latency_ms", "{:.1f}"),
        ("optimize_public", "models.name=yolox_nano.tiers.tier=fp32/onnxruntime.latency_ms", "{:.1f}"),
        ("optimize_public", "models.name=yolox_nano.tiers.tier=int8/litert.score", "{:.1f}"),
        ("optimize_public", "models.name=yolox_nano.tiers.tier=int8/litert.latency_ms", "{:.1f}"),
        ("optimize_public", "models.name=yolox_nano.tiers.tier=int8-mixed/litert.score", "{:.1f}"),
        ("optimize_public", "models.name=yolox_nano.tiers.tier=int8-mixed/litert.latency_ms", "{:.1f}"),
        ("optimize_public", "models.name=yolox_nano.tiers.tier=int8-mixed/litert.excluded_nodes", count),
        ("optimize_public", "models.name=yolox_nano.tiers", lambda ts: "{:.1f}".format(
            _tier(ts, "fp32/litert")["score"] - _tier(ts, "int8-mixed/litert")["score"])),
        ("optimize_public", "models.name=yolox_nano.tiers", lambda ts: "{:.2f}".format(
            _tier(ts, "fp32/litert")["latency_ms"] / _tier(ts, "int8-mixed/litert")["latency_ms"])),
        ("optimize_public", "targets", lambda t: "{:.2f}".format(_paired(t, "int8-mixed/litert")["median"])),
        ("optimize_public", "targets", lambda t: "{:.2f}".format(_paired(t, "int8-mixed/litert")["min"])),
        ("optimize_public", "models.name=yolox_nano.tiers.tier=int8-mixed/onnxruntime.score", "{:.1f}"),
        ("optimize_public", "models.name=yolox_nano.tiers.tier=int8-mixed/onnxruntime.latency_ms", "{:.1f}"),
    ],
    "MLPerf Tiny on Cortex-M4": [
        ("mcu", "headline.kws.instructions_ratio", "{}"),
        ("mcu", "headline.kws.flash_ratio", "{}"),
        ("mcu", "headline.kws.ram_ratio", "{}"),
        ("mcu", "headline.kws.portable_vs_tflm_ref", "{}"),
        ("mcu", "headline.vww.instructions_ratio", "{}"),
        ("mcu", "headline.vww.flash_ratio", "{}"),
        ("mcu", "headline.vww.ram_ratio", "{}"),
        ("mcu", "headline.vww.portable_vs_tflm_ref", "{}"),
        ("mcu", "headline.ad.instructions_ratio", "{}"),
        ("mcu", "headline.ad.flash_ratio", "{}"),
        ("mcu", "headline.ad.ram_ratio", "{}"),
        ("mcu", "headline.ad.portable_vs_tflm_ref", "{}"),
        ("mcu", "headline.ic.instructions_ratio", "{}"),
        ("mcu", "headline.ic.flash_ratio", "{}"),
        ("mcu", "headline.ic.ram_ratio", "{}"),
        ("mcu", "headline.ic.portable_vs_tflm_ref", "{}"),
    ],
    "MQTT chaos": [
        ("chaos_mqtt", "sent", "{:,}"), ("chaos_mqtt", "broker_restarts", "{}"),
        ("chaos_mqtt", "received_unique", "{:,}"), ("chaos_mqtt", "duplicates", "{:,}"), ("chaos_mqtt", "lost", "{}"),
    ],
    "model rollout": [
        ("rollout", "install_kills", "{}"), ("rollout", "bricked", "{}"), ("rollout", "bad_bundles", "{}"),
        ("rollout", "bad_bundles_refused", "{}"), ("rollout", "fleet.devices", "{}"),
        ("rollout", "fleet.canary", lambda v: v.rstrip("%")), ("rollout", "fleet.rounds", "{}"),
        ("rollout", "offline_catch_up_s.0", "{:.2f}"), ("rollout", "load.before.0", "{:.1f}"),
    ],
    "fleet recorder": [
        ("fleet_scale", "setup.db", lambda v: v.split()[1]), ("fleet_scale", "setup.seconds", "{:.0f}"),
        ("fleet_scale", "msgs_per_s", "{:,}"), ("fleet_scale", "one_recorder.sustained.offered_per_s", "{:,.0f}"),
        ("fleet_scale", "lag_p95_s", "{:.3f}"), ("fleet_scale", "lost", "{}"), ("fleet_scale", "duplicated_rows", "{}"),
        ("fleet_scale", "two_recorders.sustained.msgs_per_s", "{:,}"),
        ("fleet_scale", "two_recorders.sustained.lag_p95_s", "{:.3f}"), ("fleet_scale", "load.before.0", "{:.1f}"),
    ],
    "training-time compression": [
        ("compress", "baseline.macs", mega), ("compress", "baseline.accuracy", "{:.2f}"),
        ("compress", "baseline.latency_ms", "{:.3f}"),
        *[("compress", f"pruned.{i}.{k}", f) for i in range(3) for k, f in
          (("ratio", lambda v: f"{v * 100:.0f}"), ("accuracy", "{:.2f}"), ("latency_ms", "{:.3f}"))],
        ("compress", "pruned.1.fine_tune_epochs", "{}"),
        ("compress", "targets.prune50_speedup.value", "{:.2f}"), ("compress", "targets.prune50_speedup.loss_pts", "{:.2f}"),
        ("compress", "targets.prune50_speedup.loss_pts_95ci.0", "{:.2f}"),
        ("compress", "targets.prune50_speedup.loss_pts_95ci.1", "{:.2f}"), ("compress", "pruned.1.seeds", "{}"),
        ("compress", "pruned.1.accuracy_per_seed.0", "{:.2f}"), ("compress", "pruned.1.accuracy_per_seed.1", "{:.2f}"),
        ("compress", "lowrank.accuracy", "{:.2f}"), ("compress", "lowrank.latency_ms", "{:.3f}"),
        ("compress", "clustered.clusters", "{}"), ("compress", "clustered.accuracy", "{:.2f}"),
        ("compress", "clustered.clustered_bytes", "{:,}"), ("compress", "clustered.fp32_bytes", "{:,}"),
        ("compress", "distilled.width", "{}"), ("compress", "distilled.accuracy", "{:.2f}"),
        ("compress", "distilled.accuracy_std", "{:.2f}"), ("compress", "undistilled.accuracy", "{:.2f}"),
        ("compress", "undistilled.accuracy_std", "{:.2f}"), ("compress", "distilled.seeds", "{}"),
        ("compress", "cascade.macs_saved", lambda v: f"{v * 100:.1f}"),
        ("compress", "cascade.loss_points", lambda v: f"{-v:.2f}"), ("compress", "nas.surrogate_mape", "{:.2f}"),
        ("compress", "fp32_builtin.accuracy", "{:.2f}"), ("compress", "targets.qat_vs_ptq.ptq_drop_pts", "{:.1f}"),
        ("compress", "qat.accuracy", "{:.2f}"), ("compress", "qat.litert.accuracy", "{:.2f}"),
        ("compress", "targets.qat_vs_ptq.qat_gap_pts", "{:.2f}"),
        ("compress", "load.before.0", "{:.1f}"),
    ],
    "KWS front end": [
        ("kws_frontend", "bit_exact.host.0.clips", "{}"),
        ("kws_frontend", "bit_exact.qemu_cortex_m4.output", lambda s: s.rsplit("/", 1)[1]),
        ("kws_frontend", "c_host_gcc_O2_ms_per_second_of_audio", "{:.2f}"),
        ("kws_frontend", "cortex_m4_instructions_per_frame", thousands), ("kws_frontend", "load.before.0", "{:.1f}"),
    ],
    "firmware": [
        ("firmware", "headline.ram_like_for_like_ratio.ds_cnn_kws", "{:.2f}"),
        ("firmware", "headline.ram_like_for_like_ratio.tiny_convnet", "{:.2f}"),
        ("firmware", "headline.ram_like_for_like_ratio.conv1d_net", "{:.2f}"),
        ("firmware", "headline.goal_ratio", "{}"),
    ],
}


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
