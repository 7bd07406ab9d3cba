"""``export()``: an int8 ``.tflite`` to a ready-to-build C folder (standalone C99 + TFLite Micro array)."""

from __future__ import annotations

import contextlib
import functools
import json
import keyword
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from firmware_export import arena, cmsis, codegen, lower, oracle, project, tflm, toolchain
from firmware_export.targets import TARGETS, Target, get_target
from firmware_export.tflite_model import Model, load
from sdk.errors import ExportError

C_KEYWORDS = {"auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else", "enum",
              "extern", "float", "for", "goto", "if", "inline", "int", "long", "register", "restrict",
              "return", "short", "signed", "sizeof", "static", "struct", "switch", "typedef", "union",
              "unsigned", "void", "volatile", "while", "_Bool", "_Complex", "_Imaginary", "main"}
CODE_ESTIMATE = 6 * 1024  # kernels + invoke when no ARM toolchain can measure them
SAMPLES_IN_FOLDER = 8


@dataclass
class ExportResult:
    out_dir: Path
    name: str
    target: str
    arena_bytes: int
    unplanned_arena_bytes: int
    weight_bytes: int
    flash_bytes: int
    ram_bytes: int
    stack_bytes: int
    io_bytes: int
    measured: bool  # flash/RAM from arm-none-eabi-size (else estimated)
    measured_on: str
    tflm_arena_bytes: int
    tflm_arena_checked: bool
    model_bytes: int
    kernels: str = "portable"  # or "cmsis-nn"
    io: str = "caller"  # or "arena": input/output buffers inside the arena
    cmsis_nn_dir: str | None = None
    layers: list[dict[str, Any]] = field(default_factory=list)

    def footprint(self, target: Target) -> dict[str, Any]:
        d = asdict(self)
        d["out_dir"] = str(self.out_dir)
        d.update(target_flash_bytes=target.flash_bytes, target_ram_bytes=target.ram_bytes)
        return d


def check_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name or "") or name in C_KEYWORDS or keyword.iskeyword(name):
        raise ExportError(f"--name {name!r} is not a valid C identifier (letters, digits, '_', not starting "
                          "with a digit, not a C keyword), e.g. 'kws_model'")
    if len(name) > 40:
        raise ExportError(f"--name {name!r} is longer than 40 characters")
    return name


def export(model: str | Path | bytes, out_dir: str | Path, target: str = "cortex-m4", name: str = "ember_model",
           section: str | None = None, overwrite: bool = False, measure: bool = True,
           frontend: str | None = None, kernels: str = "portable",
           cmsis_nn_dir: str | Path | None = None, io: str = "caller") -> ExportResult:
    """Export ``model`` (a full-integer int8 ``.tflite``) to ``out_dir`` for ``target``.

    Writes ``src/NAME.{h,c}`` + kernels (standalone C99), ``tflm/model_data.{h,c}``, an example,
    Arduino/Make/CMake files, ``mcu/`` (QEMU verification firmware) and ``footprint.json``.
    Raises ExportError (and leaves ``out_dir`` untouched) for unsupported models, bad names, or a
    model that does not fit ``target``. ``measure`` cross-compiles with arm-none-eabi-gcc when present.
    ``frontend="kws"`` adds the audio front end, ``"ecg"`` the ECG beat front end (``firmware_export.frontend``)
    to ``src/``.
    ``kernels="cmsis-nn"`` (cortex-m4, cortex-m7, cortex-m33, cortex-m55) calls Arm's CMSIS-NN for the layers it has kernels for
    (``firmware_export.cmsis``); ``cmsis_nn_dir`` (else ``$CMSIS_NN_DIR``) is where it is: the export
    refers to it and never copies it. ``io="arena"`` puts the input and output in the arena too (as
    TensorFlow Lite Micro does; the API gains ``NAME_input()``, ``NAME_output()``, ``NAME_run()``), so
    their bytes are reused once dead; ``"caller"`` (default): the caller owns both buffers.
    """
    name = check_name(name)
    tgt = get_target(target)
    cmsis_dir = _cmsis_choice(kernels, tgt, cmsis_nn_dir)
    if section is not None and not re.fullmatch(r"[.A-Za-z0-9_$]+", section):
        raise ExportError(f"--section {section!r} is not a valid section name (e.g. .rodata or .model_flash)")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ExportError(f"{out} exists and is not empty; pass overwrite=True (--force) or choose another --out")
    m = load(model)
    with _inconsistent(m):
        lower.check_model(m)
        tflm.check_ops(m)
        layers = lower.Lowerer(m, name).lower()
        if cmsis_dir:
            cmsis.use_cmsis(m, layers, mve=tgt.name in cmsis.MVE_CPUS)
        if io not in ("caller", "arena"):
            raise ExportError(f"--io {io!r}: choose caller (your buffers) or arena (input/output inside the arena)")
        plan = arena.make_plan(m, layers, name, io_in_arena=io == "arena")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        with _inconsistent(m):
            result = _write(m, plan, tmp, name, tgt, section, measure, cmsis_dir)
        _check_fit(result, tgt)
        result.out_dir = out
        (tmp / "footprint.json").write_text(json.dumps(result.footprint(tgt), indent=2) + "\n")
        (tmp / "README.md").write_text(project.readme(name, tgt, result.footprint(tgt)))
        if frontend:
            from firmware_export.frontend import install

            install(tmp, name, m, frontend)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return result


@contextlib.contextmanager
def _inconsistent(m: Model) -> Iterator[None]:
    """Planning or writing a graph that contradicts itself (a damaged file the checks in ``load`` and
    ``lower`` did not name) ends as an ``ExportError``, never a traceback from inside the exporter."""
    try:
        yield
    except lower.INCONSISTENT as e:
        where = str(m.path) if m.path else "model"
        raise ExportError(f"{where}: the model's tensors or options are inconsistent ({type(e).__name__}: "
                          f"{' '.join(str(e).split())[:200]}); re-convert it") from None


def _cmsis_choice(kernels: str, tgt: Target, cmsis_nn_dir: str | Path | None) -> Path | None:
    if kernels not in cmsis.CHOICES:
        raise ExportError(f"--kernels {kernels!r}: choose one of {', '.join(cmsis.CHOICES)}")
    if kernels == "portable":
        return None
    if tgt.name not in cmsis.DSP_CPUS + cmsis.MVE_CPUS:
        raise ExportError(f"--kernels cmsis-nn needs a Cortex-M with the DSP extension or Helium "
                          f"({', '.join(cmsis.DSP_CPUS + cmsis.MVE_CPUS)}), not {tgt.name}; use --kernels portable")
    return cmsis.find_dir(cmsis_nn_dir).resolve()


def _write(m: Model, plan: arena.Plan, d: Path, name: str, tgt: Target, section: str | None,
           measure: bool, cmsis_dir: Path | None = None) -> ExportResult:
    x, y = m.tensors[m.inputs[0]], m.tensors[m.outputs[0]]
    for sub in ("src", "tflm", "mcu", f"examples/{name}_demo"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    (d / "src" / f"{name}.h").write_text(codegen.header(m, plan, name))
    (d / "src" / f"{name}.c").write_text(codegen.source(m, plan, name, section))
    for f in ("ember_nn.h", "ember_nn.c"):
        shutil.copy(toolchain.RUNTIME / f, d / "src" / f)
    for f in ("startup.c", project.linker_script(tgt), "verify_main.c"):
        shutil.copy(toolchain.MCU / f, d / "mcu" / f)
    inputs = oracle.seeded_inputs(SAMPLES_IN_FOLDER, x.size, seed=1, dtype=x.dtype)
    expected = oracle.litert_outputs(m.raw, inputs)
    (d / "mcu" / "ember_verify_data.h").write_text(project.verify_header(inputs, expected))
    (d / "examples" / f"{name}_demo" / f"{name}_sample.h").write_text(project.sample_header(name, inputs, expected))
    (d / "examples" / f"{name}_demo" / f"{name}_demo.ino").write_text(project.arduino_ino(name))
    (d / "main.c").write_text(project.main_c(name))
    (d / "library.properties").write_text(project.library_properties(name, tgt))
    cmsis_str = str(cmsis_dir) if cmsis_dir else None
    (d / "Makefile").write_text(project.makefile(name, tgt, tgt.qemu_machine, cmsis_str))
    (d / "CMakeLists.txt").write_text(project.cmakelists(name, cmsis_str))
    weights = sum(ly.weight_bytes for ly in plan.layers)
    tflm_arena, checked = tflm.arena_estimate(m, plan.unplanned_bytes + x.nbytes + y.nbytes)
    for fname, text in tflm.write_files(m, name, section, tflm_arena, checked).items():
        (d / "tflm" / fname).write_text(text)
    io = 0 if plan.io_in_arena else x.nbytes + y.nbytes
    res = ExportResult(d, name, tgt.name, plan.arena_bytes, plan.unplanned_bytes, weights,
                       kernels="cmsis-nn" if cmsis_dir else "portable", io="arena" if plan.io_in_arena else "caller",
                       cmsis_nn_dir=str(cmsis_dir) if cmsis_dir else None,
                       flash_bytes=weights + CODE_ESTIMATE, ram_bytes=plan.arena_bytes + 1024 + io,
                       stack_bytes=1024, io_bytes=io, measured=False, measured_on="",
                       tflm_arena_bytes=tflm_arena, tflm_arena_checked=checked, model_bytes=len(m.raw),
                       layers=_layer_rows(m, plan))
    if measure and toolchain.which("arm-none-eabi-gcc"):
        proxy = tgt if tgt.arm else TARGETS["cortex-m4"]
        with tempfile.TemporaryDirectory() as b:
            build = toolchain.arm_build(d / "src", name, proxy, Path(b), toolchain.MCU / "footprint_main.c",
                                        linker_script="mps2.ld", cmsis_dir=cmsis_dir)
        res.flash_bytes, res.stack_bytes = build.flash, build.stack
        res.ram_bytes = build.ram  # .data + .bss (arena, in/out buffers) + stack
        res.measured, res.measured_on = True, proxy.name
    return res


def _layer_rows(m: Model, plan: arena.Plan) -> list[dict[str, Any]]:
    """Per layer; ``ring_rows``: rows of its output kept at once when it runs fused with the next layer."""
    rings = {f.producer: f.ring_rows for f in plan.fusions}
    blocks = {r.first + i: plan.layers[r.first].index for r in plan.residuals for i in range(3)}
    return [{"index": ly.index, "op": ly.op, "kernel": ly.kernel, "output_shape": list(m.tensors[ly.output].shape),
             "weight_bytes": ly.weight_bytes, "arena_live_bytes": live, "macs": ly.macs, "ring_rows": rings.get(k),
             "row_block": blocks.get(k)}
            for k, (ly, live) in enumerate(zip(plan.layers, plan.live_bytes))]


def _check_fit(r: ExportResult, tgt: Target) -> None:
    problems = []
    if r.flash_bytes > tgt.flash_bytes:
        problems.append(f"flash {r.flash_bytes} B > {tgt.flash_bytes} B")
    if r.ram_bytes > tgt.ram_bytes:
        problems.append(f"RAM {r.ram_bytes} B (arena {r.arena_bytes} B) > {tgt.ram_bytes} B")
    if problems:
        bigger = [t.name for t in TARGETS.values()
                  if t.flash_bytes >= r.flash_bytes and t.ram_bytes >= r.ram_bytes]
        hint = f"a target that fits: {', '.join(bigger)}" if bigger else "no built-in target is large enough"
        raise ExportError(f"model does not fit {tgt.name}: {'; '.join(problems)}. Shrink it (fewer channels, "
                          f"`ember optimize` pruning) or pick a larger --target ({hint})")


def verify_host(out_dir: str | Path, model: str | Path | bytes, n: int = 1000, cc: str = "gcc",
                seed: int = 0) -> dict[str, Any]:
    """Compile ``out_dir/src`` with ``cc`` (-std=c99 -Wall -Wextra -Werror), run ``n`` seeded inputs in one
    process and compare with LiteRT's reference kernels. Returns counts and the max abs difference."""
    out = Path(out_dir)
    fp = json.loads((out / "footprint.json").read_text())
    m = load(model)
    x, y = m.tensors[m.inputs[0]], m.tensors[m.outputs[0]]
    inputs = oracle.seeded_inputs(n, x.size, seed, x.dtype)
    ref = _reference(m.raw, n, seed)
    with tempfile.TemporaryDirectory() as b:
        exe = toolchain.host_build(out / "src", fp["name"], Path(b) / "runner", cc, _cmsis_dir_of(fp))
        got = toolchain.host_run(exe, inputs, y.size, y.dtype)
    diff = np.abs(got.astype(np.int32) - ref.astype(np.int32))
    return {"compiler": cc, "inputs": n, "max_abs_diff": int(diff.max()) if diff.size else 0,
            "mismatched_inputs": int((diff.max(axis=1) > 0).sum()) if diff.size else 0,
            "oracle": "LiteRT BUILTIN_REF (reference kernels)"}


def verify_qemu(out_dir: str | Path, timeout: float = 120) -> dict[str, Any]:
    """Build ``out_dir``'s verification firmware for its target and run it under qemu-system-arm."""
    out = Path(out_dir)
    fp = json.loads((out / "footprint.json").read_text())
    tgt = get_target(fp["target"])
    if not tgt.arm or not tgt.qemu_machine:
        tgt = TARGETS["cortex-m4"]
    with tempfile.TemporaryDirectory() as b:
        build = toolchain.arm_build(out / "src", fp["name"], tgt, Path(b), out / "mcu" / "verify_main.c",
                                    extra_include=out / "mcu", cmsis_dir=_cmsis_dir_of(fp))
        rc, text = toolchain.qemu_run(build.elf, tgt.qemu_machine or "mps2-an386", timeout)
    line = next((ln for ln in text.splitlines() if ln.startswith("ember-verify:")), text.strip()[-200:])
    return {"ok": rc == 0 and line.startswith("ember-verify:"), "exit_status": rc, "output": line,
            "machine": tgt.qemu_machine, "cpu": tgt.name, "text": build.text, "data": build.data,
            "bss": build.bss}


@functools.lru_cache(maxsize=8)
def _reference(raw: bytes, n: int, seed: int) -> np.ndarray:
    """LiteRT's outputs for the seeded inputs (cached: gcc and clang runs share them)."""
    m = load(raw)
    x = m.tensors[m.inputs[0]]
    return oracle.litert_outputs(raw, oracle.seeded_inputs(n, x.size, seed, x.dtype))


def _cmsis_dir_of(fp: dict[str, Any]) -> Path | None:
    """CMSIS-NN of an export: ``$CMSIS_NN_DIR`` when set, else the folder it was exported with."""
    if fp.get("kernels") != "cmsis-nn":
        return None
    return cmsis.find_dir(os.environ.get("CMSIS_NN_DIR") or fp.get("cmsis_nn_dir"))
