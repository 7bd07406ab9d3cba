"""Instructions per inference, per layer, the way MCU people measure: an exported model's firmware run
under qemu-system-arm with an instruction-counting TCG plugin (``mcu/plugin/insncount.c``).

Two builds of ``mcu/count_main.c`` (one inference on TFLite Micro's benchmark input): a plain one whose
count is the headline (marks only around ``NAME_invoke``, as TFLite Micro's benchmark does) and flash
figure, and one where every layer ends with a mark, for the per-layer table. Counts are exact and
repeatable (instructions, not cycles: CMSIS-NN's SMLAD does two multiply-accumulates in one).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from firmware_export import toolchain
from firmware_export.targets import TARGETS, get_target
from sdk.errors import ExportError

PLUGIN_SRC = toolchain.MCU / "plugin" / "insncount.c"


def plugin() -> Path:
    """The counting plugin, built with the host gcc once (cached next to the CMSIS-NN builds)."""
    out = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ember" / "plugin"
    lib = out / f"libinsncount-{int(PLUGIN_SRC.stat().st_mtime)}.so"
    if not lib.is_file():
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / f".{os.getpid()}.so"
        toolchain._run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(tmp), str(PLUGIN_SRC)], "building the qemu plugin",
                       timeout=120)
        os.replace(tmp, lib)
    return lib


def lcg_input(size: int) -> np.ndarray:
    """count_main.c's input: x = x * 1664525 + 1013904223 (mod 2^32) from 12345, byte = x >> 24."""
    out, x = np.empty(size, np.uint8), 12345
    for j in range(size):
        x = (x * 1664525 + 1013904223) & 0xFFFFFFFF
        out[j] = x >> 24
    return out.view(np.int8)


def _count(elf: Path, machine: str, timeout: float) -> tuple[list[int], str]:
    nm = toolchain._run(["arm-none-eabi-nm", str(elf)], "arm-none-eabi-nm", timeout=60).stdout.decode()
    addr = next((ln.split()[0] for ln in nm.splitlines() if ln.endswith(" ember_mark")), None)
    if addr is None:
        raise ExportError(f"{elf.name}: no ember_mark symbol to count from")
    cmd = ["qemu-system-arm", "-M", machine, "-nographic", "-monitor", "none", "-serial", "none",
           "-semihosting-config", "enable=on,target=native", "-kernel", str(elf),
           "-plugin", f"{plugin()},mark=0x{addr}", "-d", "plugin"]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise ExportError(f"qemu did not finish counting {elf.name} in {timeout:.0f} s") from None
    text = (proc.stdout + proc.stderr).decode(errors="replace")
    if proc.returncode != 0:
        raise ExportError(f"the count firmware failed under qemu (exit {proc.returncode}): {text[-300:]}")
    return [int(v) for v in re.findall(r"^mark (\d+)$", text, re.MULTILINE)], text


def profile(out_dir: str | Path, opt: str = "-O2", timeout: float = 300) -> dict[str, Any]:
    """Count instructions of one inference of the export in ``out_dir`` (its target's qemu machine,
    Cortex-M4 for non-ARM targets). Returns the total, flash/RAM of that firmware, the output (checked
    against LiteRT's reference kernels when the model file is given to :func:`check_output`) and one row
    per layer: instructions, MACs, MACs per instruction."""
    out = Path(out_dir)
    fp = json.loads((out / "footprint.json").read_text())
    from firmware_export.exporter import _cmsis_dir_of

    tgt = get_target(fp["target"])
    if not tgt.arm or not tgt.qemu_machine:
        tgt = TARGETS["cortex-m4"]
    main, cmsis_dir = toolchain.MCU / "count_main.c", _cmsis_dir_of(fp)
    with tempfile.TemporaryDirectory() as b:
        plain = toolchain.arm_build(out / "src", fp["name"], tgt, Path(b) / "plain", main, extra_include=toolchain.MCU,
                                    cmsis_dir=cmsis_dir, opt=opt)
        marks, text = _count(plain.elf, tgt.qemu_machine or "mps2-an386", timeout)
        layered = toolchain.arm_build(out / "src", fp["name"], tgt, Path(b) / "layers", main,
                                      extra_include=toolchain.MCU, cmsis_dir=cmsis_dir, opt=opt,
                                      defines=("-DEMBER_PROFILE_LAYERS", "-include",
                                               str(toolchain.MCU / "ember_profile.h")))
        lmarks, _ = _count(layered.elf, tgt.qemu_machine or "mps2-an386", timeout)
    if len(marks) != 3:
        raise ExportError(f"expected 3 marks from the count firmware, got {len(marks)}")
    mark_cost = marks[1] - marks[0]
    hexout = re.search(r"ember-output: ([0-9a-f]*)", text)
    rows = []
    for k, ly in enumerate(fp["layers"]):  # lmarks: m0, m1, one per layer, the one after invoke
        n = lmarks[k + 2] - lmarks[k + 1] - mark_cost
        rows.append({"index": ly["index"], "op": ly["op"], "kernel": ly.get("kernel"), "instructions": n,
                     **({"row_block": ly["row_block"]} if ly.get("row_block") is not None else {}),
                     "macs": ly["macs"], "macs_per_instruction": round(ly["macs"] / n, 3) if n > 0 and ly["macs"] else None})
    total = marks[2] - marks[1] - mark_cost
    macs = sum(ly["macs"] for ly in fp["layers"])
    return {"name": fp["name"], "cpu": tgt.name, "machine": tgt.qemu_machine, "kernels": fp.get("kernels", "portable"),
            "opt": opt, "instructions": total, "macs": macs,
            "macs_per_instruction": round(macs / total, 3) if total else None,
            "flash_bytes": plain.flash, "ram_static_bytes": plain.data + plain.bss, "stack_estimate_bytes": plain.stack,
            "output": bytes.fromhex(hexout.group(1)) if hexout else b"", "layers": rows,
            "counter": "qemu TCG plugin firmware_export/mcu/plugin/insncount.c (executed guest instructions)"}


def check_output(result: dict[str, Any], model: str | Path | bytes) -> bool:
    """Whether the counted inference's output equals LiteRT's reference kernels on the same input."""
    from firmware_export import oracle
    from firmware_export.tflite_model import load

    m = load(model)
    x = lcg_input(m.tensors[m.inputs[0]].size)
    ref = oracle.litert_outputs(m.raw, x[None, :])[0]
    return bytes(np.asarray(ref, np.int8).tobytes()) == result["output"]
