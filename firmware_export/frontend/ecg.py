"""The ECG front end in C (``--frontend ecg``): QRS detection, beat windows, the running average beat
and RR features, sample-exact with ``apps/health`` (``BeatStream``), plus the model-input
quantization. Checks: host build against Python, Cortex-M4 under qemu, instructions per beat."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from firmware_export import toolchain
from firmware_export.targets import TARGETS
from firmware_export.tflite_model import Model
from sdk.errors import ExportError

HERE = Path(__file__).resolve().parent
PREFIX = "ember_ecg_frontend"
SOURCES = ("ember_ecg_frontend.c", "ember_ecg_frontend.h")
LEN, CHANNELS, NRR = 128, 3, 8
BEAT = np.dtype([("r", "<i4"), ("window", "<i2", LEN), ("template", "<i2", LEN), ("rr", "<i4", NRR)])


def write_sources(dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy(HERE / f, dest / f)) for f in SOURCES]


def input_quant(m: Model) -> tuple[float, int]:
    """The model's input scale/zero point; checks the input is int8 [1, 128, 3] (channels-last)."""
    x = m.tensors[m.inputs[0]]
    dims = [d for d in x.shape[1:] if d != 1]
    if x.dtype != "int8" or dims != [LEN, CHANNELS]:
        raise ExportError(f"--frontend ecg needs an int8 model input [1, {LEN}, {CHANNELS}] (the health app's "
                          f"beat classifier), got {x.dtype} {list(x.shape)}")
    scale, zero_point = x.qparams()
    return float(scale), int(zero_point)


def install(out: Path, name: str, m: Model) -> None:
    """Add the ECG front end to an exported folder (``src/``, Makefile, CMake, README)."""
    from firmware_export.frontend import add_to_build

    scale, zp = input_quant(m)
    write_sources(out / "src")
    add_to_build(out, "ember_ecg_frontend")
    with open(out / "README.md", "a") as f:
        f.write(readme_section(name, scale, zp))


def readme_section(name: str, scale: float, zp: int) -> str:
    return f"""
## ECG front end (`--frontend ecg`)

`src/ember_ecg_frontend.{{c,h}}` turn an ECG lead (int16 samples at 360 Hz, 200 per mV; resample
other rates first) into beats for this classifier, in integer arithmetic (no heap, no libm;
`ember_ecg_state` is 11.7 KB, the code about 2.4 KB on a Cortex-M4 at -Os): Pan-Tompkins-style QRS detection with adaptive thresholds and
search-back, a 128-sample beat window, the patient's running average beat and 8 RR features. The beats
(R sample, window, template, RR) are the same, sample for sample, as the Python app's
(`apps.health.features.BeatStream`).

```c
#include "ember_ecg_frontend.h"
static ember_ecg_state st;  static ember_ecg_beat beats[4];
static int8_t in[{name.upper()}_INPUT_SIZE], out[{name.upper()}_OUTPUT_SIZE];   /* out: N S V F */
ember_ecg_init(&st);
/* for every sample: */
int n = ember_ecg_push(&st, sample, beats, 4);
for (int k = 0; k < n; ++k) {{
  ember_ecg_quantize(&beats[k], {scale!r}f, {zp}, in);   /* this model's input scale / zero point */
  {name}_invoke(in, out);                                   /* class = argmax(out) */
}}
```
"""


def build_host(build: Path, cc: str = "gcc") -> Path:
    src = build / "src"
    write_sources(src)
    exe = build / f"ecg_runner_{cc}"
    toolchain._run([cc, *toolchain.HOST_FLAGS, f"-I{src}", str(src / f"{PREFIX}.c"), str(HERE / "ecg_host_runner.c"),
                    "-o", str(exe)], f"ECG front end host build with {cc}", timeout=120)
    return exe


def run_host(exe: Path, samples: np.ndarray) -> np.ndarray:
    """The C front end's beats for int16 ``samples`` (one stream): a structured array (BEAT)."""
    proc = toolchain._run([str(exe)], f"running {exe.name}", input=np.ascontiguousarray(samples, np.int16).tobytes(),
                          timeout=300)
    if len(proc.stdout) % BEAT.itemsize:
        raise ExportError(f"{exe.name} wrote {len(proc.stdout)} bytes, not a whole number of beats")
    return np.frombuffer(proc.stdout, BEAT)


def python_beats(samples: np.ndarray) -> np.ndarray:
    """The Python app's beats for the same stream, as a BEAT array."""
    from apps.health.features import beat_inputs

    beats = beat_inputs(np.asarray(samples, np.int16))
    out = np.zeros(len(beats), BEAT)
    for k, b in enumerate(beats):
        out[k] = (b.r, b.window, b.template, b.rr)
    return out


def compare(c: np.ndarray, py: np.ndarray) -> dict[str, Any]:
    same_n = len(c) == len(py)
    return {"beats_c": len(c), "beats_python": len(py),
            "beats_match": bool(same_n and np.array_equal(c["r"], py["r"])),
            "features_match": bool(same_n and all(np.array_equal(c[k], py[k]) for k in ("window", "template", "rr")))}


def verify_host(streams: dict[str, np.ndarray], cc: str = "gcc") -> dict[str, Any]:
    """Every stream (name → int16 samples) through the C build and Python; per-stream verdicts."""
    with tempfile.TemporaryDirectory() as b:
        exe = build_host(Path(b), cc)
        per = {k: compare(run_host(exe, x), python_beats(x)) for k, x in streams.items()}
    return {"compiler": cc, "streams": per, "beats_match": all(v["beats_match"] for v in per.values()),
            "features_match": all(v["features_match"] for v in per.values())}


def _data_header(samples: np.ndarray, beats: np.ndarray) -> str:
    def arr(ctype: str, name: str, vals: np.ndarray) -> str:
        v = np.asarray(vals).ravel().tolist()
        rows = ",\n".join(", ".join(map(str, v[i:i + 24])) for i in range(0, len(v), 24))
        return f"static const {ctype} {name}[{max(len(v), 1)}] = {{\n{rows or '0'}\n}};"

    feats = np.concatenate([beats["window"].astype(np.int32), beats["template"].astype(np.int32), beats["rr"]], axis=1)
    return "\n".join(["#ifndef ECG_VERIFY_DATA_H", "#define ECG_VERIFY_DATA_H", "#include <stdint.h>",
                      f"#define ECG_VERIFY_SAMPLES {len(samples)}", f"#define ECG_VERIFY_BEATS {len(beats)}",
                      arr("int16_t", "ecg_verify_samples", samples), arr("int32_t", "ecg_verify_r", beats["r"]),
                      arr("int32_t", "ecg_verify_features", feats), "#endif", ""])


def _arm(samples: np.ndarray, main: str, build: Path, target: str) -> Any:
    tgt = TARGETS[target]
    src, data = build / "src", build / "data"
    write_sources(src)
    data.mkdir(parents=True, exist_ok=True)
    (data / "ecg_verify_data.h").write_text(_data_header(samples, python_beats(samples)))
    return toolchain.arm_build(src, PREFIX, tgt, build / "build", HERE / main, extra_include=data), tgt


def verify_qemu(samples: np.ndarray, target: str = "cortex-m4") -> dict[str, Any]:
    """The stream compiled into Cortex-M firmware with Python's beats; the firmware compares and exits 0."""
    with tempfile.TemporaryDirectory() as b:
        build, tgt = _arm(np.asarray(samples, np.int16), "ecg_verify_main.c", Path(b), target)
        rc, text = toolchain.qemu_run(build.elf, tgt.qemu_machine or "mps2-an386")
    line = next((ln for ln in text.splitlines() if ln.startswith("ecg-verify:")), text.strip()[-200:])
    return {"ok": rc == 0, "exit_status": rc, "output": line, "cpu": tgt.name, "machine": tgt.qemu_machine,
            "flash_bytes": build.text, "ram_bytes": build.data + build.bss}


def instructions_per_beat(samples: np.ndarray, target: str = "cortex-m4") -> dict[str, Any]:
    """Instructions executed per beat by the front end on ``target`` under qemu (exec trace count of
    the whole firmware run, start-up included, divided by the beats); also per sample."""
    from firmware_export.frontend.verify import _executed_instructions

    samples = np.asarray(samples, np.int16)
    with tempfile.TemporaryDirectory() as b:
        build, tgt = _arm(samples, "ecg_verify_main.c", Path(b), target)
        log = Path(b) / "trace.log"
        cmd = ["qemu-system-arm", "-M", tgt.qemu_machine or "mps2-an386", "-nographic", "-monitor", "none",
               "-serial", "none", "-semihosting-config", "enable=on,target=native",
               "-d", "in_asm,exec,nochain", "-D", str(log), "-kernel", str(build.elf)]
        if toolchain._run(cmd, "", timeout=600).returncode != 0:
            raise ExportError(f"ECG instruction-count firmware failed under qemu ({target})")
        total = _executed_instructions(log)
    beats = len(python_beats(samples))
    return {"instructions": total, "beats": beats, "samples": len(samples),
            "instructions_per_beat": round(total / max(beats, 1)), "instructions_per_sample": round(total / len(samples))}


def run_exported(out_dir: Path, name: str, samples: np.ndarray, scale: float, zero_point: int,
                 cc: str = "gcc") -> tuple[np.ndarray, np.ndarray]:
    """Build an exported folder that has the ECG front end with ``ecg_model_runner.c`` and stream int16
    ``samples`` through front end → int8 (``scale``/``zero_point``: the model's input, see
    :func:`input_quant`) → model; returns (R samples, int8 outputs [beats, classes])."""
    src = Path(out_dir) / "src"
    header = (src / f"{name}.h").read_text()
    out_size = int(header.split(f"#define {name.upper()}_OUTPUT_SIZE ", 1)[1].split()[0])
    with tempfile.TemporaryDirectory() as b:
        exe = Path(b) / "ecg_model_runner"
        cmd = [cc, *toolchain.HOST_FLAGS, f"-I{src}", "-include", str(src / f"{name}.h"),
               *toolchain._model_defines(name), f"-DECG_SCALE={float(np.float32(scale))!r}f",
               f"-DECG_ZERO_POINT={int(zero_point)}", *sorted(str(p) for p in src.glob("*.c")),
               str(HERE / "ecg_model_runner.c"), "-o", str(exe)]
        toolchain._run(cmd, f"model + ECG front end host build with {cc}", timeout=300)
        proc = toolchain._run([str(exe)], "running the model with the ECG front end",
                              input=np.ascontiguousarray(samples, np.int16).tobytes(), timeout=600)
    rec = np.dtype([("r", "<i4"), ("out", "i1", out_size)])
    if len(proc.stdout) % rec.itemsize:
        raise ExportError(f"ecg_model_runner wrote {len(proc.stdout)} bytes, not whole beats")
    got = np.frombuffer(proc.stdout, rec)
    return got["r"].copy(), got["out"].copy()
