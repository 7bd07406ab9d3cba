"""Benchmark of the KWS audio front end (sdk.features.kws / firmware_export/frontend).

Time per 1 s of 16 kHz audio (49 frames x 40 channels) in Python (numpy reference) and in C on this
host (gcc -O2, many clips in one process, minus a one-clip run for process start-up); the Cortex-M4
footprint of the front end from arm-none-eabi-size and the instructions one frame executes (qemu
exec trace, -Os); bit-exactness of C against Python on seeded
clips and under qemu. Run: .venv/bin/python bench/kws_frontend.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import load, parser, write_result

from firmware_export.frontend import verify
from sdk.features import KwsFrontend
from sdk.util.timing import time_calls

SR = 16000


def clips(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    amp = 10 ** rng.uniform(1, 4.5, (n, 1))
    return np.clip(np.round(rng.standard_normal((n, SR)) * amp), -32768, 32767).astype(np.int16)


def python_ms(fe: KwsFrontend, x: np.ndarray, runs: int = 30) -> float:
    return time_calls(lambda: fe(x), runs=runs, warmup=1).p50_ms


def c_ms(fe: KwsFrontend, data: np.ndarray, cc: str = "gcc") -> float:
    with tempfile.TemporaryDirectory() as b:
        exe = verify.build_host(fe, Path(b), SR, cc)

        def wall(rows: np.ndarray) -> float:
            best = float("inf")
            for _ in range(3):
                t0 = time.perf_counter()
                subprocess.run([str(exe)], input=rows.tobytes(), capture_output=True, check=True)
                best = min(best, time.perf_counter() - t0)
            return best

        return (wall(data) - wall(data[:1])) / (len(data) - 1) * 1000


def main() -> None:
    parser(__doc__).parse_args()
    load_before = load()
    fe = KwsFrontend()
    data = clips(200)
    host = [verify.verify_host(fe, data, cc) for cc in ("gcc", "clang")]
    qemu = verify.verify_qemu(fe, data[:3])
    size = verify.arm_footprint(fe)
    instructions = verify.arm_instructions_per_frame(fe)
    write_result("kws_frontend", {
        "frontend": repr(fe), "features_per_second": [fe.frames_for(SR), fe.channels],
        "python_ms_per_second_of_audio": round(python_ms(fe, data[0]), 3),
        "c_host_gcc_O2_ms_per_second_of_audio": round(c_ms(fe, data), 3),
        "cortex_m4_instructions_per_frame": instructions,
        "cortex_m4_instructions_per_second_of_audio": instructions * fe.frames_for(SR),
        "bit_exact": {"host": host, "qemu_cortex_m4": qemu},
        "cortex_m4_Os_bytes": {**size, "note": "text = code + constant tables; bss = FFT work buffer; "
                               "max_frame_stack = largest function frame (-fstack-usage)"},
        "command": "python bench/kws_frontend.py",
    }, load_before)


if __name__ == "__main__":
    main()
