"""How far a layer's output may overlap an input it reads for the last time, proven from the kernel's loops.

Every kernel in ``runtime/ember_nn.c`` that is analysed here computes its output elements in increasing
linear (NHWC) order and reads all the inputs of one output element before it writes that element.
Let ``L(i)`` be the last output element whose computation reads input element ``i``. With the output
placed ``delta`` bytes after the input (``delta < 0``: before it), writing ``out[o]`` overwrites
``in[o + delta]``; the result is unchanged iff no input byte is read after it was overwritten, that is
``L(i) <= i - delta`` for every input byte still read. So ``max_delta = min_i (i - L(i))``: any
``delta <= max_delta`` is safe, and for ``delta <= 0`` every larger value corrupts the output.

Examples: elementwise kernels give 0 (in place); a 1x1 convolution with C channels gives ``1 - C`` (it
rereads a pixel's inputs for each output channel); a stride-2 3x3 convolution whose output is
smaller than its input trails it by a few bytes.
"""

from __future__ import annotations

import numpy as np

from firmware_export.lower import Layer, shape4
from firmware_export.tflite_model import Model

WINDOW_KERNELS = {"ember_conv2d", "ember_depthwise_conv2d", "ember_avg_pool", "ember_max_pool"}
# CMSIS-NN's add reads then writes 4 elements at a time: the elementwise analysis holds for it.
ELEMENTWISE_KERNELS = {"ember_add", "ember_mul", "ember_requant", "ember_lut", "arm_elementwise_add_s8"}
FC_KERNELS = {"ember_fully_connected"}


def last_readers(kernel: str, fields: dict[str, object], inp: tuple[int, int, int, int],
                 out: tuple[int, int, int, int]) -> np.ndarray | None:
    """``L`` for an activation input of shape ``inp`` (NHWC) of ``kernel`` with parameters ``fields``
    (a ``Layer``'s) writing ``out``: per input byte, the last output element index whose computation
    reads it (-1: never read). None for kernels this module does not analyse."""
    if kernel == "arm_convolve_wrapper_s8" and "chunk_pixels" in fields:
        # 1x1 on chunks of B pixels, output channels outer: a chunk's outputs are written while all its
        # inputs are still read, so input byte i is safe only once the next chunk's outputs begin
        chunk = int(fields["chunk_pixels"])  # type: ignore[call-overload]
        pixel = np.arange(int(np.prod(inp)), dtype=np.int64) // inp[3]
        return (pixel // chunk + 1) * chunk * out[3]
    kernel = _as_ember(kernel, fields, inp)
    if kernel in ELEMENTWISE_KERNELS:  # a broadcast operand is last read by the output's last repetition
        return np.arange(int(np.prod(inp)), dtype=np.int64) + int(np.prod(out)) - int(np.prod(inp))
    if kernel in FC_KERNELS:
        depth, outs = int(fields["in_depth"]), int(fields["out_depth"])
        batch = np.arange(int(np.prod(inp)), dtype=np.int64) // depth
        return batch * outs + outs - 1
    if kernel not in WINDOW_KERNELS:
        return None
    last_pixel = _last_output_pixel(inp, out, fields)
    cin, cout = inp[3], out[3]
    ch = np.arange(cin, dtype=np.int64)
    if kernel == "ember_conv2d":  # output channel oc reads its group's input channels
        fc = int(fields["filter_c"])
        per_group = cout // (cin // fc)
        last_oc = (ch // fc + 1) * per_group - 1
    elif kernel == "ember_depthwise_conv2d":
        dm = int(fields["depth_mult"])
        last_oc = ch * dm + dm - 1
    else:  # pooling: channel c reads channel c
        last_oc = ch
    readers = last_pixel[:, None] * cout + last_oc[None, :]
    return np.where(last_pixel[:, None] < 0, -1, readers).ravel()


def _as_ember(kernel: str, f: dict[str, object], inp: tuple[int, int, int, int]) -> str:
    """The Ember kernel whose analysis holds for a CMSIS-NN call, or the name unchanged.

    The analysis needs: when output element ``o`` is written, every element before it has read its
    inputs. CMSIS-NN's DSP paths that satisfy it: ``arm_convolve_s8`` (im2col of two output pixels,
    then all their channels), the 3x3 and "opt" depthwise convolutions (a pixel's channels, 4 at a time
    or all at once, read before written), ``arm_avgpool_s8`` (a pixel's window summed, then written).
    Not the 1x1 and 1xN convolutions (output channels in the outer loop) nor max pooling (which writes
    the first tap before reading the others): those never overlap an input. Nor does any MVE kernel
    (``mve`` set by ``cmsis.use_cmsis`` for Helium cores: e.g. its depthwise convolution runs blocks of
    124 channels over all pixels), except the elementwise add (16 elements read, then written)."""
    if f.get("mve"):
        return kernel
    if kernel == "arm_convolve_wrapper_s8":
        one_by_one = f["kh"] == 1 and f["kw"] == 1 and f["pad_h"] == 0 and f["pad_w"] == 0
        return "ember_conv2d" if not one_by_one and f["kh"] != 1 and inp[1] != 1 else kernel
    if kernel == "arm_depthwise_conv_wrapper_s8":
        plain = f["depth_mult"] == 1 and f["dil_h"] == 1 and f["dil_w"] == 1 and inp[0] == 1
        return "ember_depthwise_conv2d" if plain else kernel
    return "ember_avg_pool" if kernel == "arm_avgpool_s8" else kernel


def _last_output_pixel(inp: tuple[int, ...], out: tuple[int, ...], f: dict[str, object]) -> np.ndarray:
    """Per input pixel (n, y, x), the last output pixel whose window covers it (-1: none)."""
    n, ih, iw, _ = inp
    _, oh, ow, _ = out
    kh, kw, sh, sw = (int(f[k]) for k in ("kh", "kw", "stride_h", "stride_w"))  # type: ignore[call-overload]
    dh, dw = int(f.get("dil_h", 1)), int(f.get("dil_w", 1))  # type: ignore[call-overload]
    ph, pw = int(f["pad_h"]), int(f["pad_w"])  # type: ignore[call-overload]
    b, oy, ox = np.meshgrid(np.arange(n), np.arange(oh), np.arange(ow), indexing="ij")
    opix = (b * oh + oy) * ow + ox
    last = np.full(n * ih * iw, -1, dtype=np.int64)
    for fy in range(kh):
        iy = oy * sh - ph + dh * fy
        for fx in range(kw):
            ix = ox * sw - pw + dw * fx
            ok = (iy >= 0) & (iy < ih) & (ix >= 0) & (ix < iw)
            np.maximum.at(last, ((b * ih + iy) * iw + ix)[ok], opix[ok])
    return last


def max_safe_delta(model: Model, layer: Layer, arg: int) -> int | None:
    """The largest ``output offset - input offset`` (bytes) at which ``layer`` still computes the same
    result when its output overlaps activation argument ``arg``; None when not analysed."""
    inp = shape4(model.tensors[layer.inputs[arg]].shape)
    readers = last_readers(layer.kernel, layer.fields, inp, shape4(model.tensors[layer.output].shape))
    if readers is None:
        return None
    read = readers >= 0
    if not read.any():
        return int(model.tensors[layer.inputs[arg]].nbytes)
    return int((np.arange(readers.size, dtype=np.int64)[read] - readers[read]).min())


def min_lead_delta(model: Model, layer: Layer) -> int | None:
    """For the 1x1 convolution run on chunks of pixels last chunk first (``chunk_reverse``): the smallest
    ``output offset - input offset`` at which no chunk's output meets the input of a chunk still to run
    (chunk j writes while chunks 0..j are unread: ``P_j * cout + delta >= P_(j+1) * cin``). None for
    other layers."""
    f = layer.fields
    if not f.get("chunk_reverse"):
        return None
    n, h, w, cin = shape4(model.tensors[layer.inputs[0]].shape)
    cout, pixels, chunk = shape4(model.tensors[layer.output].shape)[3], n * h * w, int(f["chunk_pixels"])  # type: ignore[call-overload]
    starts = list(range(0, pixels, chunk))
    return max(min(p + chunk, pixels) * cin - p * cout for p in starts)

