"""Generated calls into Arm CMSIS-NN for Cortex-M cores with the DSP extension (M4, M7, M33) or Helium (M55).

``use_cmsis(model, layers)`` switches the layers CMSIS-NN has a kernel for (convolution, depthwise
convolution, pooling, small ADDs, softmax) from Ember's portable kernels to CMSIS-NN calls with static
parameter structs. FULLY_CONNECTED, large ADDs and global average pooling keep Ember's kernels: faster here, and CMSIS-NN's
integer rescale of FC is not LiteRT's (``fc_integer_matches_double``). Each switched layer gets the
scratch bytes CMSIS-NN's DSP kernels need (its ``*_get_buffer_size_dsp`` rules, kept here because the
arena is planned at export time): the planner places that scratch in the arena, alive for that layer.
On a Helium core (M55) CMSIS-NN compiles its MVE kernels (``ARM_MATH_MVEI``, from ``__ARM_FEATURE_MVE``):
their scratch follows the ``*_get_buffer_size_mve`` rules, and the layers are marked ``mve`` so that
``overlap.py`` lets no MVE kernel's output overlap its input (their loop orders are not analysed).

CMSIS-NN kernels read and write in their own orders, so the planner lets their outputs overlap an input
only where the order is known to allow it (``overlap.py``), and never runs them row by row. CMSIS-NN is
bit-exact with TFLite's reference kernels; the exported project takes its location as ``CMSIS_NN_DIR``
(it is never copied into the export).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from firmware_export import quant
from firmware_export.lower import ConstArray, Layer, shape4
from firmware_export.tflite_model import Model
from sdk.errors import ExportError

KERNELS = {"ember_conv2d": "arm_convolve_wrapper_s8", "ember_depthwise_conv2d": "arm_depthwise_conv_wrapper_s8",
           "ember_avg_pool": "arm_avgpool_s8",
           "ember_max_pool": "arm_max_pool_s8", "ember_add": "arm_elementwise_add_s8",
           "ember_softmax": "arm_softmax_s8"}
CHOICES = ("portable", "cmsis-nn")
DSP_CPUS = ("cortex-m4", "cortex-m7", "cortex-m33")  # targets whose cores have the DSP extension
MVE_CPUS = ("cortex-m55",)  # targets whose cores have Helium (MVE): CMSIS-NN's MVE kernels
CH_IN_BLOCK_MVE = 124  # arm_nnsupportfunctions.h


def find_dir(path: str | Path | None = None) -> Path:
    """CMSIS-NN's folder (with ``Include/arm_nnfunctions.h``): ``path``, else ``$CMSIS_NN_DIR``."""
    p = path or os.environ.get("CMSIS_NN_DIR")
    if not p:
        raise ExportError("--kernels cmsis-nn needs CMSIS-NN's location: pass --cmsis-nn-dir DIR or set "
                          "CMSIS_NN_DIR (get it from github.com/ARM-software/CMSIS-NN or your MCU SDK)")
    d = Path(p).expanduser()
    if not (d / "Include" / "arm_nnfunctions.h").is_file():
        raise ExportError(f"{d} is not a CMSIS-NN folder (no Include/arm_nnfunctions.h)")
    return d


def _align4(n: int) -> int:
    return (n + 3) // 4 * 4


def _dims(shape: tuple[int, ...]) -> str:
    return "{{{}, {}, {}, {}}}".format(*shape4(shape))


def _int32_shift(layer: Layer) -> None:
    """CMSIS-NN takes shifts as int32 arrays (Ember's kernels as int8)."""
    for i, c in enumerate(layer.consts):
        if c.name.endswith("_shift"):
            layer.consts[i] = ConstArray(c.name, "int32_t", c.values.astype(np.int32))


def scratch_bytes(kernel: str, f: dict[str, object], cin: int, cout: int = 0, mve: bool = False) -> int:
    """Bytes of ``ctx.buf`` the DSP (or, with ``mve``, the MVE) build of ``kernel`` needs (upper bound
    over compilers)."""
    kh, kw = int(f.get("kh", 1)), int(f.get("kw", 1))  # type: ignore[call-overload]
    if mve:
        return _scratch_mve(kernel, f, cin, cout, kh, kw)
    if kernel == "ember_conv2d":
        return 2 * _align4(kh * kw * cin) * 2  # im2col of two columns as int16; >= 1x1 fast's 4 * cin
    if kernel == "ember_depthwise_conv2d":
        if f["depth_mult"] != 1 or f["dil_h"] != 1 or f["dil_w"] != 1:
            return 0
        if kh == 3 and kw == 3 and int(f["pad_h"]) <= 1 and int(f["pad_w"]) <= 1:  # type: ignore[call-overload]
            return 0
        return cin * kh * kw * 2
    if kernel == "ember_avg_pool":
        return cin * 4
    return 0


def _scratch_mve(kernel: str, f: dict[str, object], cin: int, cout: int, kh: int, kw: int) -> int:
    """``arm_convolve_wrapper_s8_get_buffer_size_mve`` / ``arm_depthwise_conv_wrapper_s8_get_buffer_size_mve``
    (upper bounds: the 1xN rule's pads bounded by ``pad_w + 1`` columns; avgpool needs none)."""
    if kernel == "ember_conv2d":
        im2col = 4 * ((kh * kw * cin + 15) // 16) * 16  # 4 columns, whole Q registers
        return max(im2col, (kw + int(f["pad_w"]) + 1) * cin)  # type: ignore[call-overload]
    if kernel == "ember_depthwise_conv2d":
        size = 4 * CH_IN_BLOCK_MVE * kh * kw if f["dil_h"] == 1 and f["dil_w"] == 1 and f["depth_mult"] == 1 else 0
        if cin == 1 and cout > 1:  # run as a convolution (gcc's threshold), with the filter transposed
            size = max(size, _scratch_mve("ember_conv2d", f, 1, cout, kh, kw) + kh * kw * cout)
        return size
    return 0


def _eligible(m: Model, layer: Layer) -> bool:
    if layer.kernel not in KERNELS or "lut1" in layer.fields:
        return False  # Ember's table-driven ADD is faster (and its FC exact: fc_integer_matches_double)
    src = [t for t in layer.inputs if t >= 0]
    n = shape4(m.tensors[src[0]].shape)[0] if src else 1
    if layer.kernel == "ember_conv2d":
        return int(layer.fields["filter_c"]) == shape4(m.tensors[src[0]].shape)[3]  # type: ignore[call-overload]
    if layer.kernel == "ember_avg_pool" and global_pool(m, layer):
        return False  # Ember's SXTAB16 global average pool is faster than arm_avgpool_s8
    if layer.kernel in ("ember_avg_pool", "ember_max_pool", "ember_depthwise_conv2d"):
        return n == 1
    return True


def global_pool(m: Model, layer: Layer) -> bool:
    """An average pool whose window is the whole image (no padding, channels % 4 == 0, at most 256 pixels):
    ember_avg_pool's DSP path runs it with SXTAB16, two channels per instruction."""
    n, h, w, c = shape4(m.tensors[layer.inputs[0]].shape)
    f = layer.fields
    return (n, f["kh"], f["kw"], f["pad_h"], f["pad_w"], c % 4) == (1, h, w, 0, 0, 0) and h * w <= 256


def use_cmsis(m: Model, layers: list[Layer], mve: bool = False) -> list[Layer]:
    """Switch every layer CMSIS-NN can run (see module doc); ``mve``: for a Helium core. Returns the same
    list."""
    for layer in layers:
        if not _eligible(m, layer):
            continue
        cin = shape4(m.tensors[layer.inputs[0]].shape)[3] if layer.inputs[0] >= 0 else 0
        if layer.fields.pop("interleave4", None):
            _unfold(layer)
        cout = shape4(m.tensors[layer.output].shape)[3]
        layer.scratch_bytes = scratch_bytes(layer.kernel, layer.fields, cin, cout, mve)
        if mve:
            layer.fields["mve"] = 1
        layer.kernel = KERNELS[layer.kernel]
        layer.params_type = "cmsis"
        _int32_shift(layer)
    return layers


def _unfold(layer: Layer) -> None:
    """Back to TFLite's weight layout and an explicit input offset: CMSIS-NN's padded taps add 0, which
    an offset folded into the bias would not account for."""
    w = np.asarray(layer.plain_filter, np.int8)
    off = -int(layer.fields.pop("pad_value"))  # type: ignore[call-overload]
    layer.consts[0] = ConstArray(layer.consts[0].name, "int8_t", w.ravel())
    bias = next(c for c in layer.consts if c.name.endswith("_bias")) if off else None
    if bias is not None:
        bias.values = (bias.values.astype(np.int64) - off * w.reshape(len(w), -1).astype(np.int64).sum(axis=1)
                       ).astype(np.int32)
    layer.fields["in_offset"] = off


def declare(m: Model, layer: Layer, prefix: str, whole: bool = True) -> list[str]:
    """Static parameter structs of a CMSIS-NN layer (``whole``: with the whole layer's dims; a layer run
    in pieces builds its own)."""
    f, p = layer.fields, f"{prefix}_c{layer.index}"
    x = m.tensors[layer.inputs[0]].shape if layer.inputs[0] >= 0 else ()
    y = m.tensors[layer.output].shape
    act = f"{{{f.get('act_min', -128)}, {f.get('act_max', 127)}}}"
    if layer.kernel in ("arm_convolve_wrapper_s8", "arm_convolve_s8", "arm_depthwise_conv_wrapper_s8"):
        conv = layer.kernel != "arm_depthwise_conv_wrapper_s8"
        cout = shape4(y)[3]
        filt = f"{{{cout}, {f['kh']}, {f['kw']}, {f['filter_c']}}}" if conv else f"{{1, {f['kh']}, {f['kw']}, {cout}}}"
        mid = "" if conv else f"{f['depth_mult']}, "
        ptype = "cmsis_nn_conv_params" if conv else "cmsis_nn_dw_conv_params"
        return [(f"static const {ptype} {p} = {{{f['in_offset']}, {f['out_offset']}, {mid}"
                f"{{{f['stride_w']}, {f['stride_h']}}}, {{{f['pad_w']}, {f['pad_h']}}}, "
                f"{{{f['dil_w']}, {f['dil_h']}}}, {act}}};"),
                (f"static const cmsis_nn_per_channel_quant_params {p}_q = {{(int32_t *){f['mult']}, "
                f"(int32_t *){f['shift']}}};"),
                (f"static const cmsis_nn_dims {p}_f = {filt}, {p}_b = {{1, 1, 1, {cout}}}"
                 + ("" if "chunk_pixels" in f or not whole else f", {p}_in = {_dims(x)}, {p}_out = {_dims(y)}")
                 + ";")]
    if layer.kernel in ("arm_avgpool_s8", "arm_max_pool_s8"):
        return [(f"static const cmsis_nn_pool_params {p} = {{{{{f['stride_w']}, {f['stride_h']}}}, "
                f"{{{f['pad_w']}, {f['pad_h']}}}, {act}}};"),
                (f"static const cmsis_nn_dims {p}_in = {_dims(x)}, {p}_f = {{1, {f['kh']}, {f['kw']}, 1}}, "
                f"{p}_out = {_dims(y)};")]
    return []


def pointwise_fast(m: Model, layer: Layer) -> bool:
    """Whether CMSIS-NN runs ``layer`` with arm_convolve_1x1_s8_fast (output channels in the outer loop)."""
    f = layer.fields
    return (layer.kernel == "arm_convolve_wrapper_s8" and (f["kh"], f["kw"], f["pad_h"], f["pad_w"]) == (1, 1, 0, 0)
            and (f["stride_h"], f["stride_w"], f["dil_h"], f["dil_w"]) == (1, 1, 1, 1))


def _chunked_pointwise(m: Model, layer: Layer, prefix: str, args: list[str], ctx: str) -> str:
    """arm_convolve_1x1_s8_fast on ``chunk_pixels`` pixels at a time: each call rereads only its own
    pixels, so the output may overlap the input of later chunks (overlap.py); with ``chunk_reverse`` the
    last chunk runs first and the output may start above its input (``overlap.min_lead_delta``)."""
    f, p = layer.fields, f"{prefix}_c{layer.index}"
    n, h, w, cin = shape4(m.tensors[layer.inputs[0]].shape)
    cout, pix, chunk = shape4(m.tensors[layer.output].shape)[3], n * h * w, int(f["chunk_pixels"])  # type: ignore[call-overload]
    bias = f.get("bias", "NULL")
    loop = (f"p0 = {(pix - 1) // chunk * chunk}; p0 >= 0; p0 -= {chunk}" if f.get("chunk_reverse")
            else f"p0 = 0; p0 < {pix}; p0 += {chunk}")
    return (f"{{ const cmsis_nn_context ctx = {ctx}; int32_t p0; "
            f"for ({loop}) {{ const int32_t n = {pix} - p0 < {chunk} ? {pix} - p0 : {chunk}; "
            f"const cmsis_nn_dims in_d = {{1, 1, n, {cin}}}, out_d = {{1, 1, n, {cout}}}; "
            f"arm_convolve_1x1_s8_fast(&ctx, &{p}, &{p}_q, &in_d, {args[0]} + p0 * {cin}, &{p}_f, {f['filter']}, "
            f"&{p}_b, {bias}, &out_d, {args[1]} + p0 * {cout}); }} }}")


def call(m: Model, layer: Layer, prefix: str, args: list[str], scratch: str) -> str:
    """The C statement running ``layer`` (``args``: input pointer(s) then the output pointer)."""
    f, p = layer.fields, f"{prefix}_c{layer.index}"
    ctx = f"{{{scratch}, {layer.scratch_bytes}}}"
    if "chunk_pixels" in f:
        return _chunked_pointwise(m, layer, prefix, args, ctx)
    if layer.kernel == "arm_elementwise_add_s8":
        return (f"arm_elementwise_add_s8({args[0]}, {args[1]}, {f['in1_offset']}, {f['in1_mult']}, {f['in1_shift']}, "
                f"{f['in2_offset']}, {f['in2_mult']}, {f['in2_shift']}, {f['left_shift']}, {args[2]}, "
                f"{f['out_offset']}, {f['out_mult']}, {f['out_shift']}, {f['act_min']}, {f['act_max']}, {f['size']});")
    if layer.kernel == "arm_softmax_s8":
        return (f"arm_softmax_s8({args[0]}, {f['outer']}, {f['depth']}, {f['input_mult']}, "
                f"{f['input_left_shift']}, {f['diff_min']}, {args[1]});")
    if layer.kernel in ("arm_avgpool_s8", "arm_max_pool_s8"):
        return (f"{{ const cmsis_nn_context ctx = {ctx}; {layer.kernel}(&ctx, &{p}, &{p}_in, {args[0]}, &{p}_f, "
                f"&{p}_out, {args[1]}); }}")
    bias = f.get("bias", "NULL")
    upscale = "NULL, " if layer.kernel == "arm_convolve_s8" else ""
    return (f"{{ const cmsis_nn_context ctx = {ctx}; {layer.kernel}(&ctx, &{p}, &{p}_q, &{p}_in, {args[0]}, "
            f"&{p}_f, {f['filter']}, &{p}_b, {bias}, {upscale}&{p}_out, {args[1]}); }}")


def sources(cmsis_dir: Path) -> list[Path]:
    """CMSIS-NN's int8/int16 C sources (the float ones are left out)."""
    return sorted(p for p in (cmsis_dir / "Source").glob("*/*.c") if not p.stem.endswith(("_f16", "_f32")))


def includes(cmsis_dir: Path) -> list[str]:
    """-I flags: CMSIS-NN's Include and, beside it, CMSIS_6's core headers (only needed for Arm builds)."""
    flags = [f"-I{cmsis_dir / 'Include'}"]
    core = cmsis_dir.parent / "CMSIS_6" / "CMSIS" / "Core" / "Include"
    if core.is_dir():
        flags.append(f"-I{core}")
    return flags


def fc_integer_matches_double(layer: Layer) -> bool:
    """Whether TFLite Micro's integer rescale (CMSIS-NN's) gives LiteRT's double rescale
    (``round(acc * scale)``) for every accumulator that can reach an unclamped output of ``layer``.
    Both are non-decreasing in the accumulator, so outside that range both clamp alike: the check is a
    proof over all inputs, not a sample."""
    f = layer.fields
    c = {a.name.rsplit("_", 1)[-1]: a.values for a in layer.consts}
    lo, hi, zp = int(f["act_min"]), int(f["act_max"]), int(f["out_offset"])  # type: ignore[call-overload]
    for ch, scale in enumerate(np.asarray(layer.rescale, np.float64)):
        if not 0 < scale < 1:
            return False
        a0, a1 = int(np.floor((lo - zp - 2) / scale)), int(np.ceil((hi - zp + 2) / scale))
        acc = np.arange(max(a0, -(2 ** 31) + 1), min(a1, 2 ** 31 - 1) + 1, dtype=np.int64)
        dbl = quant.round_half_away(acc * scale)  # float64, like LiteRT
        ints = quant.mbqm(acc, int(c["mult"][ch]), int(c["shift"][ch]))
        if not np.array_equal(np.clip(dbl + zp, lo, hi), np.clip(ints + zp, lo, hi)):
            return False
    return True
