"""Build and run exported models: host compilers (gcc/clang), arm-none-eabi-gcc, qemu-system-arm."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from firmware_export import cmsis
from firmware_export.targets import Target
from sdk.errors import ExportError

PKG = Path(__file__).resolve().parent
RUNTIME = PKG / "runtime"
MCU = PKG / "mcu"
HOST_FLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-O2")
ARM_FLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-Os", "-ffunction-sections", "-fdata-sections",
             "-ffreestanding", "-fstack-usage")


@dataclass
class ArmBuild:
    elf: Path
    text: int
    data: int
    bss: int
    stack: int  # estimated worst-case stack of main -> invoke -> kernel

    @property
    def flash(self) -> int:
        return self.text + self.data

    @property
    def ram(self) -> int:
        return self.data + self.bss + self.stack


def which(tool: str) -> str | None:
    return shutil.which(tool)


def _run(cmd: list[str], what: str, **kw: object) -> subprocess.CompletedProcess[bytes]:
    try:
        proc = subprocess.run(cmd, capture_output=True, check=False, **kw)  # type: ignore[call-overload]
    except FileNotFoundError:
        raise ExportError(f"{what}: {cmd[0]} not found (install it: see .ci/system-deps.sh)") from None
    except subprocess.TimeoutExpired:
        raise ExportError(f"{what}: timed out ({' '.join(cmd[:3])} ...)") from None
    if proc.returncode != 0 and what:
        err = proc.stderr.decode(errors="replace")[-2000:]
        raise ExportError(f"{what} failed (exit {proc.returncode}): {err}")
    return proc


def _model_defines(prefix: str) -> list[str]:
    up = prefix.upper()
    return [f"-DEMBER_INVOKE={prefix}_invoke", f"-DEMBER_IN_SIZE={up}_INPUT_SIZE",
            f"-DEMBER_OUT_SIZE={up}_OUTPUT_SIZE", f"-DEMBER_IO_IN_ARENA={up}_IO_IN_ARENA",
            f"-DEMBER_RUN={prefix}_run", f"-DEMBER_INPUT={prefix}_input", f"-DEMBER_OUTPUT={prefix}_output",
            f"-DEMBER_IN_T={up}_INPUT_T", f"-DEMBER_OUT_T={up}_OUTPUT_T"]


def host_build(src: Path, prefix: str, exe: Path, cc: str = "gcc", cmsis_dir: Path | None = None) -> Path:
    """Compile ``src`` (the exported ``src/`` folder) with the host runner into ``exe`` (and CMSIS-NN's
    portable C kernels when the export calls them)."""
    sources = sorted(str(p) for p in src.glob("*.c")) + [str(RUNTIME / "host_runner.c")]
    inc = cmsis.includes(cmsis_dir)[:1] if cmsis_dir else []
    lib = [str(cmsis_lib(cmsis_dir, cc, ("-O2",), inc))] if cmsis_dir else []
    cmd = [cc, *HOST_FLAGS, f"-I{src}", *inc, "-include", str(src / f"{prefix}.h"), *_model_defines(prefix),
           *sources, *lib, "-o", str(exe)]
    _run(cmd, f"host build with {cc}", timeout=300)
    return exe


def cmsis_lib(cmsis_dir: Path, cc: str, flags: tuple[str, ...], inc: list[str]) -> Path:
    """CMSIS-NN built with ``cc flags`` as a static library, cached under ~/.cache/ember/cmsis-nn."""
    srcs = cmsis.sources(cmsis_dir)
    key = hashlib.sha256(repr((str(cmsis_dir.resolve()), cc, flags, [p.stat().st_mtime for p in srcs]))
                         .encode()).hexdigest()[:16]
    out = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ember" / "cmsis-nn" / key
    lib = out / "libcmsis-nn.a"
    if lib.is_file():
        return lib
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=out.parent))
    objs = [tmp / f"{i:03d}_{p.stem}.o" for i, p in enumerate(srcs)]
    su = ["-fstack-usage"] if cc.startswith("arm-none-eabi") else []

    def compile_one(pair: tuple[Path, Path]) -> None:
        _run([cc, *flags, *su, "-ffunction-sections", "-fdata-sections", *inc, "-c", str(pair[0]), "-o",
              str(pair[1])], f"{cc} CMSIS-NN {pair[0].name}", timeout=300)

    try:
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            list(pool.map(compile_one, zip(srcs, objs)))
        ar = "arm-none-eabi-ar" if cc.startswith("arm-none-eabi") else "ar"
        _run([ar, "rcs", str(tmp / lib.name), *map(str, objs)], f"{ar} CMSIS-NN", timeout=120)
        for o in objs:
            o.unlink()
        os.replace(tmp, out)  # another process may have won the race: then ours is dropped below
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return lib


def host_run(exe: Path, inputs: np.ndarray, out_size: int, out_dtype: str = "int8") -> np.ndarray:
    """Feed all ``inputs`` (N × in, int8 or int16) through one run of ``exe``; return N × out."""
    data = np.ascontiguousarray(inputs).tobytes()
    proc = _run([str(exe)], f"running {exe.name}", input=data, timeout=300)
    out = np.frombuffer(proc.stdout, out_dtype)
    if out.size != len(inputs) * out_size:
        raise ExportError(f"{exe.name} wrote {out.size} bytes, expected {len(inputs) * out_size}")
    return out.reshape(len(inputs), out_size)


def arm_build(src: Path, prefix: str, target: Target, build: Path, main: Path,
              extra_include: Path | None = None, linker_script: str | None = None,
              cmsis_dir: Path | None = None, opt: str = "-Os", defines: tuple[str, ...] = ()) -> ArmBuild:
    """Cross-compile the model with ``main`` for ``target``; return sizes from arm-none-eabi-size.

    ``linker_script`` (in ``mcu/``) defaults to the target's qemu machine's; footprint builds pass the
    large ``mps2.ld`` so that a model too big for the target is measured (and refused with numbers), not
    stopped by the linker."""
    if not target.arm:
        raise ExportError(f"target {target.name} is not an ARM Cortex-M; build it with its own SDK")
    build.mkdir(parents=True, exist_ok=True)
    elf = build / (main.stem + ".elf")
    includes = [f"-I{src}"] + ([f"-I{extra_include}"] if extra_include else [])
    includes += cmsis.includes(cmsis_dir) if cmsis_dir else []
    flags = [f for f in ARM_FLAGS if f != "-Os"] + [opt, *defines]
    sources = sorted(str(p) for p in src.glob("*.c")) + [str(MCU / "startup.c"), str(main)]
    objs = []
    for s in sources:
        obj = build / (Path(s).stem + ".o")
        _run(["arm-none-eabi-gcc", *target.cflags, *flags, *includes, "-include", str(src / f"{prefix}.h"),
              *_model_defines(prefix), "-c", s, "-o", str(obj)], f"arm-none-eabi-gcc {Path(s).name}",
             timeout=300)
        objs.append(str(obj))
    lib = [str(cmsis_lib(cmsis_dir, "arm-none-eabi-gcc", (*target.cflags, "-O2"), includes))] if cmsis_dir else []
    _run(["arm-none-eabi-gcc", *target.cflags, "-nostdlib", "-Wl,--gc-sections", "-T", str(MCU / (linker_script or target.linker_script)),
          *objs, *lib, "-lgcc", "-o", str(elf)], "arm-none-eabi-gcc link", timeout=300)
    text, data, bss = arm_size(elf)
    return ArmBuild(elf, text, data, bss, stack_estimate(build, Path(lib[0]).parent if lib else None))


def arm_size(elf: Path) -> tuple[int, int, int]:
    out = _run(["arm-none-eabi-size", "-A", str(elf)], "arm-none-eabi-size", timeout=60).stdout.decode()
    sec = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\.\S+)\s+(\d+)\s+\d+", out, re.MULTILINE)}
    text = sum(v for k, v in sec.items() if k in (".text", ".ARM.exidx", ".rodata"))
    return text, sec.get(".data", 0), sec.get(".bss", 0)


def stack_estimate(build: Path, lib_dir: Path | None = None) -> int:
    """main + invoke + the deepest kernel (or the 3 largest CMSIS-NN frames: wrapper, kernel, inner
    loop) + the deepest helper, from gcc's -fstack-usage files."""
    usage: dict[str, int] = {}
    for su in [*build.glob("*.su"), *(lib_dir.glob("*.su") if lib_dir else [])]:
        for line in su.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) >= 2 and parts[1].strip().isdigit():
                usage[parts[0].rsplit(":", 1)[-1]] = int(parts[1])
    main = usage.get("main", 0)
    invoke = max((v for k, v in usage.items() if k.endswith("_invoke")), default=0)
    kernels = max((v for k, v in usage.items() if k.startswith("ember_")), default=0)
    helpers = max((v for k, v in usage.items() if not k.startswith(("ember_", "arm_")) and k != "main"
                   and not k.endswith("_invoke")), default=0)
    cmsis_chain = sum(sorted((v for k, v in usage.items() if k.startswith("arm_")), reverse=True)[:3])
    return main + invoke + max(kernels, cmsis_chain) + helpers + 32  # + exception frame slack


def qemu_run(elf: Path, machine: str, timeout: float = 120) -> tuple[int, str]:
    """Run ``elf`` under qemu-system-arm with semihosting; return (exit status, console text)."""
    cmd = ["qemu-system-arm", "-M", machine, "-nographic", "-monitor", "none", "-serial", "none",
           "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)]
    proc = _run(cmd, "", timeout=timeout)
    return proc.returncode, (proc.stdout + proc.stderr).decode(errors="replace")
