"""Training-time compression on the speech app's keyword spotter (bench/_compress_task.py): baseline,
structured pruning 30/50/70 % after fine-tuning, unstructured magnitude pruning, PTQ vs QAT int8,
distilled vs undistilled students over seeds, low-rank and clustered variants (and the architecture
search / cascade of bench/_compress_search.py when present).

    PYTHONPATH=. nice -n 10 python bench/compress.py            # full (~2 h on one busy core, resumable)
    PYTHONPATH=. python bench/compress.py --quick               # a quarter of the data, fewer epochs

Baseline: the app's shipped network (apps/speech/model, trained 24 epochs with augmentation), loaded
into torch; pruned nets fine-tune on the app's augmented training copies (a random one of the 10 feature
copies per clip + SpecAugment, ``--no-prune-augment``: the clean copy), the other fine-tuning and the
students on the clean training features. QAT vs PTQ where PTQ loses a point: bench/_compress_qat.py. Every entry: ``accuracy`` (top-1 %, the task's *test* split = the app's val speakers, reported only),
``val_accuracy`` (the *val* split = the app's select speakers, where choices are made), ``macs`` (of
the exported ONNX, sdk.optimize.graph_stats) and ``latency_ms`` (p50, ONNX Runtime, 1 thread, the same
input for every model, all measured in one interleaved run at the end, best of rounds).
Checkpoints go to ``--work``: a re-run with the same work folder resumes (same weights).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._util import load, parser, write_result

KD_T, KD_ALPHA = 4.0, 0.9  # distillation settings (fine-tuning and students)
PRUNE_RATIOS = (0.3, 0.5, 0.7)


def parse() -> argparse.Namespace:
    p = parser(__doc__)
    p.add_argument("--quick", action="store_true", help="a quarter of the training data and fewer epochs")
    p.add_argument("--work", type=Path, default=Path("/tmp/ember-bench-compress"), help="checkpoints (resumable)")
    p.add_argument("--ft-epochs", type=int, default=None, help="fine-tuning after low-rank / clustering / magnitude "
                   "pruning (default 3; quick 1)")
    p.add_argument("--prune-epochs", type=int, default=None, help="fine-tuning after structured pruning (default 48; "
                   "quick 1)")
    p.add_argument("--prune-augment", action=argparse.BooleanOptionalAction, default=True,
                   help="fine-tune pruned nets on the app's augmented training copies + SpecAugment (default on)")
    p.add_argument("--prune-seeds", type=int, default=2, help="fine-tuning seeds of the 50 %% point (default 2)")
    p.add_argument("--prune-schedule", choices=("oneshot", "iterative"), default="oneshot",
                   help="structured pruning: one prune, or half the ratio + fine-tuning first (default oneshot)")
    p.add_argument("--student-epochs", type=int, default=None, help="students (default 10; quick 3)")
    p.add_argument("--qat-epochs", type=int, default=None, help="quantization-aware fine-tuning (default 2; quick 1)")
    p.add_argument("--reuse-search", action="store_true", help="take nas/cascade from bench/results/"
                   "compress_search.json when it ran clean on code identical to this commit's (same task)")
    p.add_argument("--builtin-qat-epochs", type=int, default=2, help="QAT of builtin-finebars48-nobn (default 2)")
    p.add_argument("--builtin-qat-lr", type=float, default=1e-4, help="its QAT learning rate (default 1e-4)")
    p.add_argument("--seeds", type=int, default=3, help="student seeds (default 3)")
    p.add_argument("--student-width", type=float, default=0.5, help="student width multiplier (default 0.5)")
    p.add_argument("--rank", type=int, default=16, help="low-rank: rank of every factorized layer (default 16)")
    p.add_argument("--clusters", type=int, default=16, help="weight clustering: values per layer (default 16)")
    a = p.parse_args()
    for k, full, quick in (("prune_epochs", 48, 1), ("ft_epochs", 3, 1), ("student_epochs", 10, 3), ("qat_epochs", 2, 1)):
        if getattr(a, k) is None:
            setattr(a, k, quick if a.quick else full)
    return a


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        from bench._compress_task import load_task

        self.args, self.work = args, args.work / ("quick" if args.quick else "full")
        self.work.mkdir(parents=True, exist_ok=True)
        self.task = load_task(seed=0, quick=args.quick)
        self.onnx: dict[str, Path] = {}  # entry -> model measured for latency
        self.teachers: dict[int, Any] = {}

    def kd(self, teacher: Any) -> Any:
        """Fine-tuning loss: distillation from the uncompressed model (alpha 0.9, T 4), outputs cached."""
        from sdk.compress.distill import CachedTeacher, Distiller

        if id(teacher) not in self.teachers:
            self.teachers[id(teacher)] = CachedTeacher(teacher, self.task.x_train)
        return Distiller(self.teachers[id(teacher)], temperature=KD_T, alpha=KD_ALPHA)

    def fit(self, net: Any, name: str, epochs: int, lr: float, seed: int = 0, data: Any = None, **kw: Any) -> Any:
        from sdk.compress import fit

        return fit(net, self.task.train if data is None else data, epochs, lr, seed=seed,
                   checkpoint=self.checkpoint(name, epochs), desc=name, **kw)

    def checkpoint(self, name: str, epochs: int) -> Path:
        return self.work / f"{name}_e{epochs}.pt"

    def entry(self, name: str, net: Any, **extra: Any) -> dict[str, Any]:
        """Accuracy on val/test and the exported fp32 ONNX (deployable form) for MACs and latency."""
        from sdk.compress import evaluate
        from sdk.compress.folder import export_onnx, onnx_macs

        path = export_onnx(deployable(net), self.work / f"{name}.onnx", self.task.x_test)
        self.onnx[name] = path
        return {"accuracy": round(100 * evaluate(net, self.task.test), 2),
                "val_accuracy": round(100 * evaluate(net, self.task.val), 2), "macs": onnx_macs(path),
                "params": int(sum(p.numel() for p in net.parameters())), **extra}

    def onnx_accuracy(self, path: Path) -> tuple[float, float]:
        from sdk.optimize.data import Dataset
        from sdk.optimize.measure import predict, score

        return tuple(round(score(predict(path, Dataset(x, y)), y), 2)  # type: ignore[return-value]
                     for x, y in ((self.task.x_test, self.task.y_test), (self.task.x_val, self.task.y_val)))


def deployable(net: Any) -> Any:
    """The speech app's export form (input normalisation folded into conv 1) where it applies."""
    import torch

    from apps.speech.train import deployable as fold

    ok = isinstance(net, torch.nn.Sequential) and isinstance(net[1], torch.nn.Conv2d) and net[1].padding == (0, 0)
    return fold(net) if ok else copy.deepcopy(net).eval()


def run_pruning(b: Bench, base: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Taylor scores on 512 training samples, channel counts rounded to multiples of 8, fine-tuning
    distilled from the unpruned network on the app's augmented training data (``--no-prune-augment``:
    the clean copies); ``--prune-schedule iterative`` prunes half the ratio first, fine-tunes half the
    epochs, then prunes to the ratio and fine-tunes the full epochs. 50 % runs ``--prune-seeds`` seeds
    (fine-tuning order, dropout, augmentation): its accuracies are the mean over them."""
    rng = np.random.default_rng(0)
    idx = np.sort(rng.choice(len(b.task.y_train), min(512, len(b.task.y_train)), replace=False))
    score_data = (b.task.x_train[idx], b.task.y_train[idx])
    out, nets = [], {}
    for ratio in PRUNE_RATIOS:
        name = f"pruned{int(ratio * 100)}"
        runs = [prune_run(b, base, ratio, seed, score_data) for seed in range(b.args.prune_seeds if ratio == 0.5 else 1)]
        e, net = runs[0]
        e["loss_pts_95ci"] = loss_interval(b, base, [r[1] for r in runs])
        if len(runs) > 1:
            for k in ("accuracy", "val_accuracy"):
                acc = np.array([r[0][k] for r in runs])
                e[f"{k}_per_seed"], e[k] = acc.tolist(), round(float(acc.mean()), 2)
                e[f"{k}_std"] = round(float(acc.std(ddof=1)), 2)
            e["seeds"] = len(runs)
        b.onnx[name] = b.onnx.pop(f"{name}_s0")  # the seeds share one architecture: one latency
        for seed in range(1, len(runs)):
            b.onnx.pop(f"{name}_s{seed}")
        e["_name"] = name
        out.append(e)
        nets[name] = net
    return out, nets


def loss_interval(b: Bench, base: Any, nets: list[Any], n: int = 2000) -> list[float]:
    """Paired bootstrap (test clips resampled, 2000 times) 95 % interval of the accuracy loss in points of
    ``nets`` (their mean over seeds) against ``base``: how much of a loss the 906 test clips can tell."""
    from sdk.compress.train import predict_logits

    y = b.task.y_test
    ok_base = predict_logits(base, b.task.test).argmax(1) == y
    ok = np.mean([predict_logits(net, b.task.test).argmax(1) == y for net in nets], axis=0)
    rng = np.random.default_rng(0)
    boot = [float((ok_base[i].mean() - ok[i].mean()) * 100) for i in (rng.integers(0, len(y), len(y)) for _ in range(n))]
    return [round(float(np.percentile(boot, q)), 2) for q in (2.5, 97.5)]


def prune_run(b: Bench, base: Any, ratio: float, seed: int, score_data: tuple[np.ndarray, np.ndarray]
              ) -> tuple[dict[str, Any], Any]:
    from sdk.compress.prune import prune

    pct, a = int(ratio * 100), b.args
    iterative = a.prune_schedule == "iterative"
    tag = f"pruned{pct}" + (f"_s{seed}" if seed else "") + ("_aug" if a.prune_augment else "")
    data = b.task.augmented(seed=seed) if a.prune_augment else b.task.train
    first = ratio / 2 if iterative else ratio
    net = prune(base, b.task.x_val[:1], ratio=first, method="taylor", data=score_data, multiple=8)
    before = b.entry(f"{tag}_before_ft", net)
    b.onnx.pop(f"{tag}_before_ft")
    if iterative:
        b.fit(net, f"{tag}_step1", max(1, a.prune_epochs // 2), 1e-3, seed=seed, loss_fn=b.kd(base), data=data)
        net = prune(net, b.task.x_val[:1], ratio=1 - (1 - ratio) / (1 - first), method="taylor",
                    data=score_data, multiple=8)
    b.fit(net, f"{tag}_step2" if iterative else tag, a.prune_epochs, 1e-3, seed=seed, loss_fn=b.kd(base), data=data)
    e = b.entry(f"pruned{pct}_s{seed}", net, ratio=ratio, channels=net[1].out_channels, method="taylor, multiple of 8",
                schedule=f"iterative ({first:g} then {ratio:g})" if iterative else "one-shot",
                accuracy_before_finetune=before["accuracy"], fine_tune_epochs=a.prune_epochs,
                fine_tune="distilled from the baseline (alpha 0.9, T 4), AdamW, cosine from lr 1e-3, "
                          + ("augmented training copies + SpecAugment" if a.prune_augment else "clean training copies"))
    return e, net


def run_magnitude(b: Bench, base: Any) -> dict[str, Any]:
    import zlib

    from sdk.compress.prune import magnitude_prune, sparse_size_bytes

    net, reapply = magnitude_prune(base, 0.5)
    b.fit(net, "magnitude50", b.args.ft_epochs, 3e-4, after_step=reapply, loss_fn=b.kd(base))
    e = b.entry("magnitude50", net, sparsity=0.5, **sparse_size_bytes(net), _name="magnitude50")
    e["onnx_bytes"] = b.onnx["magnitude50"].stat().st_size
    e["onnx_zlib_bytes"] = len(zlib.compress(b.onnx["magnitude50"].read_bytes(), 9))
    return e


def run_quant(b: Bench, candidates: dict[str, Any]) -> dict[str, Any]:
    """PTQ (ember optimize's int8: minmax, per-channel) on each candidate; QAT on the one whose PTQ
    loses most on the *val* split; both reported on test."""
    from bench._compress_qat import lsb_diff
    from sdk.compress import evaluate
    from sdk.compress.folder import onnx_macs
    from sdk.compress.qat import export_qdq, quantize_aware
    from sdk.compress.qat_tflite import qdq_to_tflite
    from sdk.optimize.quantize import quantize_static_int8

    rng = np.random.default_rng(0)
    calib = b.task.x_train[np.sort(rng.choice(len(b.task.x_train), 256, replace=False))]
    rows = {}
    for name, net in candidates.items():
        fp32 = b.onnx[name]
        ptq = quantize_static_int8(fp32, b.work / f"{name}.ptq.onnx", [c[None] for c in calib])
        test, val = b.onnx_accuracy(ptq)
        rows[name] = {"fp32_accuracy": round(100 * evaluate(net, b.task.test), 2),
                      "fp32_val_accuracy": round(100 * evaluate(net, b.task.val), 2),
                      "ptq_accuracy": test, "ptq_val_accuracy": val, "ptq_file": ptq}
        rows[name]["ptq_val_drop"] = round(rows[name]["fp32_val_accuracy"] - val, 2)
    chosen = max(rows, key=lambda n: rows[n]["ptq_val_drop"])
    q = quantize_aware(deployable(candidates[chosen]), calib)
    b.fit(q, f"qat_{chosen}", b.args.qat_epochs, 5e-5, loss_fn=b.kd(candidates[chosen]))
    path = export_qdq(q, b.work / "qat.int8.onnx", b.task.x_test)
    tfl = qdq_to_tflite(path, b.work / "qat.int8.tflite")
    b.onnx["qat"], b.onnx["ptq"], b.onnx["qat_litert"] = path, rows[chosen]["ptq_file"], tfl
    test, val = b.onnx_accuracy(path)
    lite_test, lite_val = b.onnx_accuracy(tfl)
    base_row = rows[chosen]
    macs = onnx_macs(b.onnx[chosen])
    return {"chosen": chosen, "candidates": {n: {k: v for k, v in r.items() if k != "ptq_file"} for n, r in rows.items()},
            "ptq": {"model": chosen, "accuracy": base_row["ptq_accuracy"], "val_accuracy": base_row["ptq_val_accuracy"],
                    "fp32_accuracy": base_row["fp32_accuracy"], "macs": macs, "calibration": "minmax, 256 samples"},
            "qat": {"model": chosen, "accuracy": test, "val_accuracy": val, "fp32_accuracy": base_row["fp32_accuracy"],
                    "torch_int8_accuracy": round(100 * evaluate(q, b.task.test), 2), "macs": macs,
                    "litert": {"accuracy": lite_test, "val_accuracy": lite_val,
                               "max_output_diff_lsb_vs_onnxruntime": lsb_diff({"onnx": path, "tflite": tfl},
                                                                               [b.task.test, b.task.val])},
                    "epochs": b.args.qat_epochs, "fine_tune": "distilled from its fp32 model"}}


def run_distill(b: Bench, teacher: Any) -> dict[str, Any]:
    import torch

    res: dict[str, list[dict[str, Any]]] = {"distilled": [], "undistilled": []}
    for seed in range(b.args.seeds):
        for kind in ("undistilled", "distilled"):
            torch.manual_seed(seed)
            net = b.task.build(width=b.args.student_width)
            kd = b.kd(teacher) if kind == "distilled" else None
            b.fit(net, student_name(b, kind, seed), b.args.student_epochs, 3e-3, seed=seed, loss_fn=kd)
            res[kind].append(b.entry(student_name(b, kind, seed), net, seed=seed))
    out = {}
    for kind, rows in res.items():
        acc = np.array([r["accuracy"] for r in rows])
        out[kind] = {"accuracy": round(float(acc.mean()), 2), "accuracy_std": round(float(acc.std(ddof=1)), 2)
                     if len(acc) > 1 else 0.0, "accuracy_per_seed": acc.tolist(),
                     "val_accuracy": round(float(np.mean([r["val_accuracy"] for r in rows])), 2),
                     "macs": rows[0]["macs"], "params": rows[0]["params"], "width": b.args.student_width,
                     "epochs": b.args.student_epochs, "seeds": b.args.seeds, "latency_of": student_name(b, kind, 0)}
    out["distilled"].update(teacher="baseline (width 1.0)", temperature=KD_T, alpha=KD_ALPHA)
    return out


def run_lowrank_cluster(b: Bench, base: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    from sdk.compress.cluster import cluster_weights, distinct_values
    from sdk.compress.lowrank import factorize

    lr_net, report = factorize(base, rank=b.args.rank)
    b.fit(lr_net, "lowrank", b.args.ft_epochs, 1e-3, loss_fn=b.kd(base))
    lowrank = b.entry("lowrank", lr_net, _name="lowrank", rank=b.args.rank, layers_factorized=len(report),
                      max_rel_error=round(max((r["rel_error"] for r in report.values()), default=0.0), 4))
    cl_net, books = cluster_weights(base, b.args.clusters)
    books.attach(cl_net)
    b.fit(cl_net, "clustered", b.args.ft_epochs, 3e-4, after_step=books.snap, loss_fn=b.kd(base))
    books.detach()
    clustered = b.entry("clustered", cl_net, _name="clustered", clusters=b.args.clusters, **books.size_bytes(cl_net),
                        max_distinct_values=max(distinct_values(cl_net)[n] for n in books.assignments))
    return lowrank, clustered


def measure_latency(b: Bench, result: dict[str, Any]) -> None:
    from sdk.compress.folder import onnx_latency_ms

    names = list(b.onnx)
    lat = dict(zip(names, onnx_latency_ms([b.onnx[n] for n in names], b.task.x_test[:1], rounds=5)))
    for entry in [result["baseline"], *result["pruned"], result["magnitude"], result["lowrank"], result["clustered"]]:
        entry["latency_ms"] = round(lat[entry.pop("_name")], 4)
    result["qat_speech"]["litert"]["latency_ms"] = round(lat["qat_litert"], 4)
    for k in ("ptq", "qat"):
        result[f"{k}_speech"]["latency_ms"] = round(lat[k], 4)
        result[f"{k}_speech"]["fp32_latency_ms"] = round(lat[result[f"{k}_speech"]["model"]], 4)
    for k in ("distilled", "undistilled"):
        result[k]["latency_ms"] = round(lat[result[k].pop("latency_of")], 4)


def main() -> int:
    import torch

    args = parse()
    torch.set_num_threads(1)
    before, t0 = load(), time.time()
    b = Bench(args)
    base = b.task.pretrained()  # the speech app's shipped network
    r: dict[str, Any] = {"task": {"name": b.task.name, "train": len(b.task.y_train), "val": len(b.task.y_val),
                                  "test": len(b.task.y_test), "quick": args.quick},
                          "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
    r["baseline"] = b.entry("baseline", base, source="apps/speech/model/model.fp32.onnx", _name="baseline")
    r["pruned"], pruned = run_pruning(b, base)
    r["magnitude"] = run_magnitude(b, base)
    d = run_distill(b, base)
    r["distilled"], r["undistilled"] = d["distilled"], d["undistilled"]
    cands = {"baseline": base, "pruned70": pruned["pruned70"],
             **{student_name(b, k, i): _load_student(b, student_name(b, k, i)) for k in ("undistilled", "distilled")
                for i in range(args.seeds)}}
    q = run_quant(b, cands)
    r["ptq_speech"], r["qat_speech"], r["quant_candidates"] = q["ptq"], q["qat"], q["candidates"]
    r["qat_builtin"] = run_builtin_qat(b)
    r["fp32_builtin"], r["ptq"], r["qat"] = (r["qat_builtin"].pop(k) for k in ("fp32", "ptq", "qat"))
    r["fp32_builtin_start"] = r["qat_builtin"].pop("start")
    lowrank, clustered = run_lowrank_cluster(b, base)
    r["lowrank"], r["clustered"] = lowrank, clustered
    measure_latency(b, r)
    r["nas"], r["cascade"] = search_results(b)
    r["targets"] = targets(r)
    r["seconds"] = round(time.time() - t0, 1)
    write_result("compress_quick" if args.quick else "compress", r, before)
    return 0


def student_name(b: Bench, kind: str, seed: int) -> str:
    return f"{kind}_w{b.args.student_width:g}_s{seed}"


def _load_student(b: Bench, name: str) -> Any:
    import torch

    net = b.task.build(width=b.args.student_width)
    net.load_state_dict(torch.load(b.checkpoint(name, b.args.student_epochs), weights_only=False)["model"])
    return net.eval()


def search_results(b: Bench) -> tuple[Any, Any]:
    try:
        from bench._compress_search import nas_and_cascade
    except ImportError:
        return {"status": "not run: bench/_compress_search.py is not on this branch"}, \
            {"status": "not run: bench/_compress_search.py is not on this branch"}
    reused = reusable_search(b) if b.args.reuse_search else None
    if reused is not None:
        return reused
    out = nas_and_cascade(b.task)
    return out.get("nas"), out.get("cascade")


SEARCH_CODE = ("bench/_compress_search.py", "bench/_compress_task.py", "sdk/compress/*.py", "apps/speech/model/")


def reusable_search(b: Bench) -> tuple[Any, Any] | None:
    """nas/cascade of bench/results/compress_search.json when that run was clean, on this task (seed 0,
    same quick mode) and its commit's search code equals this checkout's (``git diff`` empty)."""
    import json
    import subprocess

    from bench._util import REPO

    path = REPO / "bench" / "results" / "compress_search.json"
    if not path.is_file():
        return None
    d = json.loads(path.read_text())
    commit = d.get("git", {}).get("commit")
    diff = ["git", "-C", str(REPO), "diff", "--quiet", str(commit), "--", *SEARCH_CODE]
    same = subprocess.run(diff, check=False, capture_output=True).returncode == 0
    if not (commit and same and not d["git"].get("dirty") and d.get("task") == b.task.name and d.get("seed") == 0
            and d.get("quick") == b.args.quick):
        print("compress_search.json not reusable (other code, task or dirty run): running the search", file=sys.stderr)
        return None
    note = {"reused_from": "bench/results/compress_search.json", "commit": commit,
            "why": f"same code ({', '.join(SEARCH_CODE)} unchanged since that clean run), same task and seed"}
    return {**d["nas"], "provenance": note}, {**d["cascade"], "provenance": note}


def run_builtin_qat(b: Bench) -> dict[str, Any]:
    """QAT vs PTQ on bench/optimize.py's builtin-finebars48-nobn (bench/_compress_qat.py), with latency."""
    from bench._compress_qat import qat_builtin
    from sdk.compress.folder import onnx_latency_ms
    from sdk.optimize.synthetic import oriented_bars

    out = qat_builtin(b.work / "builtin_qat", seeds=b.args.seeds, epochs=b.args.builtin_qat_epochs,
                      lr=b.args.builtin_qat_lr)
    files = out.pop("files")
    x, _ = oriented_bars(1, size=48, classes=16, seed=0)
    lat = onnx_latency_ms([files[k] for k in ("fp32", "ptq", "qat", "qat_tflite")], x, rounds=5)
    for k, ms in zip(("fp32", "ptq", "qat"), lat, strict=False):
        out[k]["latency_ms"] = round(ms, 4)
    out["qat"]["litert"]["latency_ms"] = round(lat[3], 4)  # LiteRT's default CPU path (XNNPack), 1 thread
    return out


def targets(r: dict[str, Any]) -> dict[str, Any]:
    base = r["baseline"]
    p50 = next(p for p in r["pruned"] if p["ratio"] == 0.5)
    speed, loss = base["latency_ms"] / p50["latency_ms"], base["accuracy"] - p50["accuracy"]
    fp32, ptq, qat = r["fp32_builtin"], r["ptq"], r["qat"]
    sel_drop, ptq_drop = fp32["selection_accuracy"] - ptq["selection_accuracy"], fp32["accuracy"] - ptq["accuracy"]
    qat_gap = fp32["accuracy"] - qat["accuracy"]
    ctl = r["qat_builtin"]["fp32_finetuned"]["accuracy"]
    nas, cas = r["nas"] or {}, r["cascade"] or {}
    d, u = r["distilled"], r["undistilled"]
    gain, spread = d["accuracy"] - u["accuracy"], max(d["accuracy_std"], u["accuracy_std"])
    return {
        "prune50_speedup": {"value": round(speed, 2), "loss_pts": round(loss, 2), "loss_pts_95ci": p50["loss_pts_95ci"],
                            "loss_pts_per_seed": [round(base["accuracy"] - a, 2) for a in p50.get("accuracy_per_seed", [])],
                            "met": bool(speed >= 1.6 and loss <= 1.0), "target": ">= 1.6x faster at <= 1 point loss"},
        "qat_vs_ptq": {"model": qat["model"], "fp32": "converged (see fp32_builtin.trained)",
                       "ptq_drop_selection_pts": round(sel_drop, 2),
                       "ptq_drop_pts": round(ptq_drop, 2), "qat_gap_pts": round(qat_gap, 2),
                       "qat_litert_gap_pts": round(fp32["accuracy"] - qat["litert"]["accuracy"], 2),
                       "qat_seed_std_pts": qat["accuracy_std"], "ptq_lost_1pt": bool(sel_drop >= 1.0),
                       "qat_gap_vs_same_finetuned_fp32_pts": round(ctl - qat["accuracy"], 2),
                       "met": bool(sel_drop >= 1.0 and qat_gap <= 0.3
                                   and fp32["accuracy"] - qat["litert"]["accuracy"] <= 0.3),
                       "target": "QAT int8 (ONNX Runtime and LiteRT) within 0.3 points of the converged fp32 "
                                 "model on a model where PTQ lost >= 1 point (report sets)"},
        "distillation": {"gain_pts": round(gain, 2), "seed_spread_pts": round(spread, 2), "met": bool(gain > spread),
                         "target": "distilled beats undistilled by more than the seed spread (std)"},
        "surrogate_error": {"mape_pct": nas.get("surrogate_mape"), "met": bool((nas.get("surrogate_mape") or 1e9) <= 10),
                            "target": "surrogate latency error <= 10 % (held-out family members)"},
        "cascade": {"macs_saved": cas.get("macs_saved"), "loss_pts": cas.get("loss_points"),
                    "met": bool(cas.get("macs_saved", 0) >= 0.4 and cas.get("loss_points", 1e9) <= 0.5),
                    "target": "cascade saves >= 40 % of MACs at <= 0.5 point loss (test split)"},
    }


if __name__ == "__main__":
    raise SystemExit(main())
