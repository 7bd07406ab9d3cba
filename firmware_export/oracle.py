"""The reference outputs: LiteRT's interpreter with TFLite's reference kernels (BUILTIN_REF)."""

from __future__ import annotations

import numpy as np

from sdk.errors import ExportError


def litert_outputs(model: bytes, inputs: np.ndarray, reference: bool = True) -> np.ndarray:
    """Run ``inputs`` (N × input elements, int8) through LiteRT one by one; return N × output elements.

    ``reference=True`` uses the reference kernels (the arithmetic the C code reproduces);
    ``False`` the default optimized kernels (XNNPACK where it applies).
    """
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError as e:  # pragma: no cover
        raise ExportError("the LiteRT oracle needs ai-edge-litert: pip install 'ember-edge[litert]'") from e
    kind = OpResolverType.BUILTIN_REF if reference else OpResolverType.AUTO
    it = Interpreter(model_content=bytes(model), experimental_op_resolver_type=kind, num_threads=1)
    it.allocate_tensors()
    i_det, o_det = it.get_input_details()[0], it.get_output_details()[0]
    shape = tuple(i_det["shape"])
    outs = []
    for row in np.asarray(inputs, np.int8):
        it.set_tensor(i_det["index"], row.reshape(shape))
        it.invoke()
        outs.append(it.get_tensor(o_det["index"]).ravel().copy())
    return np.stack(outs) if outs else np.zeros((0, int(np.prod(o_det["shape"]))), np.int8)


def seeded_inputs(n: int, size: int, seed: int = 0) -> np.ndarray:
    """``n`` reproducible int8 inputs spanning the whole int8 range."""
    return np.random.default_rng(seed).integers(-128, 128, size=(n, size), dtype=np.int8)
