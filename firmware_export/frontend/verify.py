"""Check the C front end against ``KwsFrontend``: many clips through one host process (gcc/clang),
a few clips compiled into Cortex-M firmware run under qemu-system-arm."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from firmware_export import toolchain
from firmware_export.frontend import HERE, write_sources
from firmware_export.targets import TARGETS
from sdk.errors import ExportError
from sdk.features.kws import KwsFrontend

PREFIX = "ember_kws_frontend"


def build_host(fe: KwsFrontend, build: Path, n_samples: int, cc: str = "gcc") -> Path:
    """Compile the front end + ``kws_host_runner.c`` (-std=c99 -Wall -Wextra -Werror) for clips of
    ``n_samples`` samples; returns the executable."""
    src = build / "src"
    write_sources(src, fe, fe.frames_for(n_samples))
    exe = build / f"kws_runner_{cc}"
    cmd = [cc, *toolchain.HOST_FLAGS, f"-I{src}", f"-DEMBER_KWS_RUNNER_SAMPLES={n_samples}",
           str(src / f"{PREFIX}.c"), str(HERE / "kws_host_runner.c"), "-o", str(exe)]
    toolchain._run(cmd, f"front end host build with {cc}", timeout=120)
    return exe


def run_host(exe: Path, clips: np.ndarray, fe: KwsFrontend) -> np.ndarray:
    """Features of int16 ``clips`` [N, samples] from one run of ``exe``: uint8 [N, frames, channels]."""
    clips = np.ascontiguousarray(clips, np.int16)
    proc = toolchain._run([str(exe)], f"running {exe.name}", input=clips.tobytes(), timeout=120)
    frames = fe.frames_for(clips.shape[1])
    out = np.frombuffer(proc.stdout, np.uint8)
    if out.size != len(clips) * frames * fe.channels:
        raise ExportError(f"{exe.name} wrote {out.size} bytes, expected {len(clips) * frames * fe.channels}")
    return out.reshape(len(clips), frames, fe.channels)


def verify_host(fe: KwsFrontend, clips: np.ndarray, cc: str = "gcc") -> dict[str, Any]:
    """Compile with ``cc``, run every clip in one process, compare with Python; returns the counts."""
    with tempfile.TemporaryDirectory() as b:
        got = run_host(build_host(fe, Path(b), clips.shape[1], cc), clips, fe)
    ref = np.stack([fe(c) for c in np.asarray(clips, np.int16)])
    diff = np.abs(got.astype(np.int32) - ref.astype(np.int32))
    return {"compiler": cc, "clips": len(clips), "max_abs_diff": int(diff.max()),
            "mismatched_clips": int((diff.reshape(len(clips), -1).max(axis=1) > 0).sum())}


def verify_data_header(fe: KwsFrontend, clips: np.ndarray, expected: np.ndarray | None = None) -> str:
    """``kws_verify_data.h``: clips and (by default Python's) expected features for the firmware."""
    if not 1 <= len(clips) <= 9:
        raise ExportError(f"the qemu check takes 1..9 clips, got {len(clips)}")
    ref = np.stack([fe(c) for c in clips]) if expected is None else expected
    pcm = ",\n".join("  {" + ", ".join(map(str, c.tolist())) + "}" for c in np.asarray(clips, np.int16))
    exp = ",\n".join("  {" + ", ".join(map(str, r.ravel().tolist())) + "}" for r in ref)
    n, samples, frames = len(clips), clips.shape[1], ref.shape[1]
    return "\n".join([
        "#ifndef KWS_VERIFY_DATA_H", "#define KWS_VERIFY_DATA_H", "#include <stdint.h>",
        f"#define KWS_VERIFY_COUNT {n}", f"#define KWS_VERIFY_SAMPLES {samples}", f"#define KWS_VERIFY_FRAMES {frames}",
        f"static const int16_t kws_verify_pcm[{n}][{samples}] = {{\n{pcm}\n}};",
        f"static const uint8_t kws_verify_expected[{n}][{frames * fe.channels}] = {{\n{exp}\n}};", "#endif", ""])


def verify_qemu(fe: KwsFrontend, clips: np.ndarray, target: str = "cortex-m4",
                expected: np.ndarray | None = None) -> dict[str, Any]:
    """Cross-compile the front end with the clips compiled in, run under qemu; verdict = exit status."""
    tgt = TARGETS[target]
    with tempfile.TemporaryDirectory() as b:
        src, data = Path(b) / "src", Path(b) / "data"
        write_sources(src, fe, fe.frames_for(clips.shape[1]))
        data.mkdir()
        (data / "kws_verify_data.h").write_text(verify_data_header(fe, clips, expected))
        build = toolchain.arm_build(src, PREFIX, tgt, Path(b) / "build", HERE / "kws_verify_main.c",
                                    extra_include=data)
        rc, text = toolchain.qemu_run(build.elf, tgt.qemu_machine or "mps2-an386")
    line = next((ln for ln in text.splitlines() if ln.startswith("kws-verify:")), text.strip()[-200:])
    return {"ok": rc == 0, "exit_status": rc, "output": line, "cpu": tgt.name, "machine": tgt.qemu_machine}


def arm_footprint(fe: KwsFrontend, target: str = "cortex-m4") -> dict[str, int]:
    """arm-none-eabi-size (Berkeley: text includes .rodata tables) of the front end object alone."""
    tgt = TARGETS[target]
    with tempfile.TemporaryDirectory() as b:
        src = Path(b) / "src"
        write_sources(src, fe)
        obj = Path(b) / f"{PREFIX}.o"
        toolchain._run(["arm-none-eabi-gcc", *tgt.cflags, *toolchain.ARM_FLAGS, f"-I{src}", "-c",
                        str(src / f"{PREFIX}.c"), "-o", str(obj)], "arm-none-eabi-gcc front end", timeout=120)
        out = toolchain._run(["arm-none-eabi-size", str(obj)], "arm-none-eabi-size", timeout=60).stdout.decode()
        su = (Path(b) / f"{PREFIX}.su").read_text() if (Path(b) / f"{PREFIX}.su").exists() else ""
    text, data, bss = (int(v) for v in out.splitlines()[1].split()[:3])
    stack = max((int(ln.split("\t")[1]) for ln in su.splitlines() if ln.count("\t") >= 1), default=0)
    return {"text": text, "data": data, "bss": bss, "max_frame_stack": stack}


def run_exported(out_dir: Path, name: str, clips: np.ndarray, out_size: int, cc: str = "gcc") -> np.ndarray:
    """Build an exported folder that has the front end with ``kws_model_runner.c`` and run int16
    ``clips`` [N, EMBER_KWS_SAMPLES] through PCM -> features -> int8 -> model; returns N x out int8."""
    src = Path(out_dir) / "src"
    config = (src / "ember_kws_config.h").read_text()
    samples = int(config.split("#define EMBER_KWS_SAMPLES ", 1)[1].split()[0])
    if clips.ndim != 2 or clips.shape[1] != samples:
        raise ExportError(f"clips must be [N, {samples}] (EMBER_KWS_SAMPLES), got {list(clips.shape)}")
    with tempfile.TemporaryDirectory() as b:
        exe = Path(b) / "kws_model_runner"
        cmd = [cc, *toolchain.HOST_FLAGS, f"-I{src}", "-include", str(src / f"{name}.h"),
               *toolchain._model_defines(name), *sorted(str(p) for p in src.glob("*.c")),
               str(HERE / "kws_model_runner.c"), "-o", str(exe)]
        toolchain._run(cmd, f"model + front end host build with {cc}", timeout=300)
        data = np.ascontiguousarray(clips, np.int16).tobytes()
        proc = toolchain._run([str(exe)], "running the model with the front end", input=data, timeout=300)
    out = np.frombuffer(proc.stdout, np.int8)
    if out.size != len(clips) * out_size:
        raise ExportError(f"kws_model_runner wrote {out.size} bytes, expected {len(clips) * out_size}")
    return out.reshape(len(clips), out_size)


def arm_instructions_per_frame(fe: KwsFrontend, target: str = "cortex-m4", repeat: int = 5) -> int:
    """Instructions one ``ember_kws_frame`` call executes on ``target`` (-Os), counted from qemu's
    translation-block exec trace (``-d in_asm,exec,nochain``): (count(repeat) - count(1)) / (repeat - 1).
    Cycles on silicon are higher (2-cycle loads, flash wait states)."""
    tgt = TARGETS[target]
    clip = np.random.default_rng(0).integers(-3000, 3000, (1, fe.window)).astype(np.int16)
    counts = []
    with tempfile.TemporaryDirectory() as b:
        src, data = Path(b) / "src", Path(b) / "data"
        write_sources(src, fe, 1)
        data.mkdir()
        (data / "kws_verify_data.h").write_text(verify_data_header(fe, clip))
        for n in (1, repeat):
            main = Path(b) / f"count{n}.c"
            main.write_text(f"#define KWS_REPEAT {n}\n" + (HERE / "kws_count_main.c").read_text())
            build = toolchain.arm_build(src, PREFIX, tgt, Path(b) / f"build{n}", main, extra_include=data)
            log = Path(b) / f"trace{n}.log"
            cmd = ["qemu-system-arm", "-M", tgt.qemu_machine or "mps2-an386", "-nographic", "-monitor", "none",
                   "-serial", "none", "-semihosting-config", "enable=on,target=native",
                   "-d", "in_asm,exec,nochain", "-D", str(log), "-kernel", str(build.elf)]
            if toolchain._run(cmd, "", timeout=120).returncode != 0:
                raise ExportError(f"instruction-count firmware failed under qemu ({target})")
            counts.append(_executed_instructions(log))
    return round((counts[1] - counts[0]) / (repeat - 1))


def _executed_instructions(log: Path) -> int:
    sizes: dict[int, int] = {}
    block: int | None = None
    total, new = 0, False
    with open(log) as f:
        for line in f:
            if line.startswith("0x") and ":" in line:
                pc = int(line.split(":", 1)[0], 16)
                if block is None:
                    block = pc
                    new = block not in sizes
                    sizes.setdefault(block, 0)
                if new:
                    sizes[block] += 1
            elif line.startswith("Trace "):
                block = None
                total += sizes.get(int(line.split("[", 1)[1].split("/")[1], 16), 0)
            else:
                block = None
    return total


def model_verify_header(clips: np.ndarray, expected: np.ndarray) -> str:
    """``kws_model_verify_data.h``: int16 clips [N, EMBER_KWS_SAMPLES] and the int8 outputs Python expects."""
    clips, expected = np.asarray(clips, np.int16), np.asarray(expected, np.int8)
    if not 1 <= len(clips) <= 9 or len(expected) != len(clips):
        raise ExportError(f"the qemu check takes 1..9 clips with one expected output each, got {len(clips)} "
                          f"clips and {len(expected)} outputs")
    pcm = ",\n".join("  {" + ", ".join(map(str, c.tolist())) + "}" for c in clips)
    exp = ",\n".join("  {" + ", ".join(map(str, r.ravel().tolist())) + "}" for r in expected)
    n, samples, size = len(clips), clips.shape[1], expected[0].size
    return "\n".join([
        "#ifndef KWS_MODEL_VERIFY_DATA_H", "#define KWS_MODEL_VERIFY_DATA_H", "#include <stdint.h>",
        f"#define KWS_VERIFY_COUNT {n}",
        f"static const int16_t kws_verify_pcm[{n}][{samples}] = {{\n{pcm}\n}};",
        f"static const int8_t kws_verify_expected[{n}][{size}] = {{\n{exp}\n}};", "#endif", ""])


def build_model_firmware(out_dir: Path, name: str, clips: np.ndarray, expected: np.ndarray, build: Path,
                         target: str = "cortex-m4") -> Any:
    """Cross-compile an exported folder (with the front end) + ``kws_model_verify_main.c`` for ``target``."""
    tgt = TARGETS[target]
    data = build / "data"
    data.mkdir(parents=True, exist_ok=True)
    (data / "kws_model_verify_data.h").write_text(model_verify_header(clips, expected))
    return toolchain.arm_build(Path(out_dir) / "src", name, tgt, build / "fw", HERE / "kws_model_verify_main.c",
                               extra_include=data)


def verify_model_qemu(out_dir: Path, name: str, clips: np.ndarray, expected: np.ndarray,
                      target: str = "cortex-m4") -> dict[str, Any]:
    """Run int16 ``clips`` [1..9, EMBER_KWS_SAMPLES] through the exported front end + model on ``target``
    under qemu and compare the int8 outputs with ``expected``; verdict = the firmware's exit status."""
    tgt = TARGETS[target]
    with tempfile.TemporaryDirectory() as b:
        build = build_model_firmware(out_dir, name, clips, expected, Path(b), target)
        rc, text = toolchain.qemu_run(build.elf, tgt.qemu_machine or "mps2-an386")
    line = next((ln for ln in text.splitlines() if ln.startswith("kws-model-verify:")), text.strip()[-200:])
    return {"ok": rc == 0, "exit_status": rc, "output": line, "cpu": tgt.name, "machine": tgt.qemu_machine,
            "clips": len(clips)}
