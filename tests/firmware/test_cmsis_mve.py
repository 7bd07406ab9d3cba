"""CMSIS-NN's Helium (MVE) build: the scratch Ember plans is never less than CMSIS-NN's own
``*_get_buffer_size_mve`` rules ask for, and MVE kernels never get an output overlapping their input."""

from __future__ import annotations

import itertools
import subprocess

import numpy as np

from firmware_export import cmsis, overlap, toolchain


def _cases() -> list[tuple[str, int, int, int, int, int, int, int, int, int]]:
    """(kernel, in_h, in_w, cin, cout, kh, kw, stride, pad, dil) covering im2col, 1xN, 1x1 and the
    depthwise opt / one-input-channel paths."""
    out = []
    for cin, (kh, kw), stride, pad in itertools.product((1, 3, 17, 64), ((1, 1), (3, 3), (1, 5), (1, 8), (10, 4)),
                                                        (1, 2), (0, 1, 2)):
        if pad < max(kh, kw):
            out.append(("ember_conv2d", 1 if kh == 1 else 12, 24, cin, 16, kh, kw, stride, pad, 1))
    for (cin, cout), (kh, kw), stride, pad, dil in itertools.product(
            ((1, 1), (1, 4), (1, 8), (8, 8), (64, 64), (200, 200)), ((3, 3), (1, 5), (5, 5)), (1, 2), (0, 1), (1, 2)):
        out.append(("ember_depthwise_conv2d", 12, 12, cin, cout, kh, kw, stride, pad, dil))
    return out


def _cmsis_sizes(cmsis_nn_dir, tmp_path, cases) -> list[int]:
    """Sizes from CMSIS-NN's own *_get_buffer_size_mve functions, built for the host."""
    rows = []
    for kernel, h, w, cin, cout, kh, kw, s, p, d in cases:
        oh, ow = (h + 2 * p - d * (kh - 1) - 1) // s + 1, (w + 2 * p - d * (kw - 1) - 1) // s + 1
        dw = int(kernel == "ember_depthwise_conv2d")
        rows.append(f"{{{dw}, {h}, {w}, {cin}, {cout}, {kh}, {kw}, {s}, {p}, {d}, {oh}, {ow}}}")
    src = tmp_path / "sizes.c"
    src.write_text("""#include <stdio.h>
#include "arm_nnfunctions.h"
static const int cases[][12] = {""" + ",\n".join(rows) + """};
int main(void) {
  for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const int *c = cases[i];
    const cmsis_nn_dims in = {1, c[1], c[2], c[3]}, out = {1, c[10], c[11], c[4]};
    const cmsis_nn_tile st = {c[7], c[7]}, pad = {c[8], c[8]}, dil = {c[9], c[9]};
    const cmsis_nn_activation act = {-128, 127};
    if (c[0]) {
      const cmsis_nn_dw_conv_params p = {0, 0, c[4] / c[3], st, pad, dil, act};
      const cmsis_nn_dims f = {1, c[5], c[6], c[4]};
      printf("%d\\n", (int)arm_depthwise_conv_wrapper_s8_get_buffer_size_mve(&p, &in, &f, &out));
    } else {
      const cmsis_nn_conv_params p = {0, 0, st, pad, dil, act};
      const cmsis_nn_dims f = {c[4], c[5], c[6], c[3]};
      printf("%d\\n", (int)arm_convolve_wrapper_s8_get_buffer_size_mve(&p, &in, &f, &out));
    }
  }
  return 0;
}
""")
    inc = cmsis.includes(cmsis_nn_dir)[:1]
    lib = toolchain.cmsis_lib(cmsis_nn_dir, "gcc", ("-O2",), inc)
    exe = tmp_path / "sizes"
    subprocess.run(["gcc", "-O2", *inc, str(src), str(lib), "-o", str(exe)], check=True, capture_output=True)
    return [int(v) for v in subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split()]


def test_mve_scratch_covers_cmsis_nn(cmsis_nn_dir, tmp_path, need):
    need("gcc")
    cases = _cases()
    want = _cmsis_sizes(cmsis_nn_dir, tmp_path, cases)
    short = []
    for (kernel, _h, _w, cin, cout, kh, kw, _s, p, d), size in zip(cases, want):
        f = {"kh": kh, "kw": kw, "pad_h": p, "pad_w": p, "dil_h": d, "dil_w": d, "depth_mult": cout // cin}
        got = cmsis.scratch_bytes(kernel, f, cin, cout, mve=True)
        if got < size:
            short.append((kernel, cin, cout, kh, kw, p, d, got, size))
    assert not short, short
    assert max(want) > 0 and len(set(want)) > 5  # the grid reaches the MVE rules' different branches


def test_mve_kernels_never_overlap_their_input():
    f = {"kh": 3, "kw": 3, "stride_h": 1, "stride_w": 1, "pad_h": 1, "pad_w": 1, "dil_h": 1, "dil_w": 1,
         "depth_mult": 1, "filter_c": 8}
    shape = (1, 6, 6, 8)
    for kernel in ("arm_convolve_wrapper_s8", "arm_depthwise_conv_wrapper_s8", "arm_avgpool_s8"):
        assert overlap.last_readers(kernel, f, shape, shape) is not None  # DSP: analysed
        assert overlap.last_readers(kernel, {**f, "mve": 1}, shape, shape) is None, kernel
    add = overlap.last_readers("arm_elementwise_add_s8", {"mve": 1}, shape, shape)
    assert add is not None and np.array_equal(add, np.arange(add.size))  # 16 read, then 16 written: in place


def test_use_cmsis_marks_mve_layers(int8_models):
    from firmware_export import lower
    from firmware_export.tflite_model import load

    for mve in (False, True):
        m = load(int8_models["dscnn"])
        layers = cmsis.use_cmsis(m, lower.Lowerer(m, "m").lower(), mve=mve)
        arm = [ly for ly in layers if ly.kernel.startswith("arm_")]
        assert arm and all(("mve" in ly.fields) == mve for ly in arm)
        dw = [ly for ly in arm if ly.kernel == "arm_depthwise_conv_wrapper_s8"]
        assert dw and all(ly.scratch_bytes == (4 * 124 * 9 if mve else 0) for ly in dw)  # 3x3: opt vs 3x3 path
