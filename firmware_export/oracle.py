"""The reference outputs: LiteRT's interpreter with TFLite's reference kernels (BUILTIN_REF).

LiteRT trusts the model file, and some damaged files crash it (a segfault or an abort inside a
kernel's Prepare) instead of raising. The interpreter therefore runs in a child process: a crash
there is an ``ExportError`` naming the signal, never the end of the exporting program.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from sdk.errors import ExportError

TIMEOUT_S = 600.0
_FAILED = 3  # the child's exit status when LiteRT raised (its message is on stderr)


def litert_outputs(model: bytes, inputs: np.ndarray, reference: bool = True) -> np.ndarray:
    """Run ``inputs`` (N × input elements, int8) through LiteRT one by one; return N × output elements.

    ``reference=True`` uses the reference kernels (the arithmetic the C code reproduces);
    ``False`` the default optimized kernels (XNNPACK where it applies).
    """
    with tempfile.TemporaryDirectory(prefix="ember-oracle-") as tmp:
        d = Path(tmp)
        (d / "model.tflite").write_bytes(bytes(model))
        np.save(d / "inputs.npy", np.asarray(inputs))
        cmd = [sys.executable, "-m", "firmware_export.oracle", str(d), "ref" if reference else "auto"]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=TIMEOUT_S, check=False,
                                  cwd=Path(__file__).resolve().parent.parent)
        except subprocess.TimeoutExpired:
            raise ExportError(f"LiteRT did not finish the reference run in {TIMEOUT_S:g} s; "
                              "check the .tflite with sdk.runtime.backends.load_backend(path, 'litert')") from None
        if proc.returncode == 0:
            return np.load(d / "outputs.npy")
    text = " ".join(proc.stderr.decode("utf-8", "replace").split())[-300:]
    if proc.returncode == _FAILED:
        raise ExportError(f"LiteRT cannot run the model, so there is no reference to check the C code against "
                          f"({text}); check the .tflite with sdk.runtime.backends.load_backend(path, 'litert')")
    how = (f"crashed ({signal.Signals(-proc.returncode).name})" if proc.returncode < 0
           else f"failed (exit status {proc.returncode}: {text})")
    raise ExportError(f"LiteRT {how} running the model for the reference outputs: the file is damaged or "
                      "uses something LiteRT cannot run; re-convert it")


def _run(model: bytes, inputs: np.ndarray, reference: bool) -> np.ndarray:
    """The interpreter loop itself (in the child process)."""
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError as e:  # pragma: no cover
        raise ExportError("the LiteRT oracle needs ai-edge-litert: pip install 'ember-edge[litert]'") from e
    kind = OpResolverType.BUILTIN_REF if reference else OpResolverType.AUTO
    try:
        it = Interpreter(model_content=bytes(model), experimental_op_resolver_type=kind, num_threads=1)
        it.allocate_tensors()
        i_det, o_det = it.get_input_details()[0], it.get_output_details()[0]
        shape = tuple(i_det["shape"])
        outs = []
        for row in np.asarray(inputs):
            it.set_tensor(i_det["index"], row.reshape(shape))
            it.invoke()
            outs.append(it.get_tensor(o_det["index"]).ravel().copy())
    except (ValueError, RuntimeError, IndexError, TypeError, UnicodeDecodeError) as e:
        raise ExportError(" ".join(str(e).split())[:300] or type(e).__name__) from None
    return np.stack(outs) if outs else np.zeros((0, int(np.prod(o_det["shape"]))), np.int8)


def seeded_inputs(n: int, size: int, seed: int = 0, dtype: str = "int8") -> np.ndarray:
    """``n`` reproducible inputs spanning the whole int8 (or int16) range."""
    info = np.iinfo(dtype)
    return np.random.default_rng(seed).integers(info.min, info.max + 1, size=(n, size), dtype=dtype)


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    try:
        out = _run((folder / "model.tflite").read_bytes(), np.load(folder / "inputs.npy"), sys.argv[2] == "ref")
    except ExportError as err:
        print(err, file=sys.stderr)
        sys.exit(_FAILED)
    np.save(folder / "outputs.npy", out)
