/* Ember int8 kernels: C99, no heap, bit-exact with TFLite's reference integer kernels.
 * Tensors are NHWC int8; per-channel weights; int32 biases; requantization with
 * MultiplyByQuantizedMultiplier (rounding doubling high multiply + rounding divide by 2^n). */
#ifndef EMBER_NN_H
#define EMBER_NN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct { int32_t n, h, w, c; } ember_shape;

typedef struct {
  ember_shape in, out;
  int32_t kh, kw, filter_c;          /* filter [out.c, kh, kw, filter_c]; groups = in.c / filter_c */
  int32_t stride_h, stride_w, dil_h, dil_w, pad_h, pad_w;
  int32_t in_offset, out_offset, act_min, act_max;
  const int8_t *filter;
  const int32_t *bias;               /* may be NULL */
  const int32_t *mult;               /* per output channel */
  const int8_t *shift;
  int32_t in_rows, out_rows;         /* 0, or rows kept in a ring buffer (row y at y % rows; batch 1) */
  int32_t interleave4;               /* 0, or (one group) the row length: filter [out.c, interleave4] rows in
                                        blocks of 4 interleaved every 4 bytes (see ember_fc_params), each
                                        row the kh*kw*filter_c taps padded with 0 to a multiple of 4; the
                                        input offset folded into the bias */
  int8_t *patch;                     /* arena bytes for one receptive field (NULL for 1x1 convolutions) */
  int32_t pad_value;                 /* the input zero point: taps outside the image */
} ember_conv_params;

typedef struct {
  ember_shape in, out;
  int32_t kh, kw, depth_mult;        /* filter [1, kh, kw, out.c] */
  int32_t stride_h, stride_w, dil_h, dil_w, pad_h, pad_w;
  int32_t in_offset, out_offset, act_min, act_max;
  const int8_t *filter;
  const int32_t *bias;
  const int32_t *mult;
  const int8_t *shift;
  int32_t in_rows, out_rows;         /* 0, or rows kept in a ring buffer (row y at y % rows; batch 1) */
} ember_dwconv_params;

typedef struct {
  int32_t batches, in_depth, out_depth;  /* filter [out_depth, in_depth] */
  int32_t in_offset, out_offset, act_min, act_max;
  int32_t per_channel;                   /* 0: one scale for all outputs */
  int32_t interleave4;                   /* 1: filter rows in blocks of 4, interleaved every 4 bytes
                                            (block g: byte (d/4)*16 + r*4 + d%4 is row 4g+r, column d);
                                            rows past the last full block stored plainly after them */
  const int8_t *filter;
  const int32_t *bias;
  const int32_t *mult;                   /* used with EMBER_FC_INTEGER_RESCALE (TFLite Micro) */
  const int8_t *shift;
  const double *scale;                   /* in*filter/out scale: LiteRT's reference rescale */
  const uint32_t *fx_mult;               /* or, when set, the same rounding in integers: with k = 32 + */
  int32_t fx_shift;                      /* fx_shift, sign(a) * ((|a| * fx_mult + 2^(k-1)) >> k) */
} ember_fc_params;

typedef struct {
  int32_t size;                      /* element count (same shapes) */
  int32_t in1_offset, in2_offset, out_offset, left_shift;
  int32_t in1_mult, in1_shift, in2_mult, in2_shift, out_mult, out_shift;
  int32_t act_min, act_max;
  const int32_t *lut1, *lut2;        /* or NULL: input i's rescaled value for each int8 x at [(uint8_t)x]
                                        (SUB: lut2 negated) */
  int32_t size2;                     /* elements of b, repeated over the output (== size: same shape);
                                        != size only with the tables */
} ember_add_params;

typedef struct {
  int32_t size, size2;               /* b repeats every size2 elements (size2 == size: same shape) */
  int32_t in1_offset, in2_offset, out_offset, mult, shift, act_min, act_max;
} ember_mul_params;

typedef struct {
  ember_shape in, out;
  int32_t kh, kw, stride_h, stride_w, pad_h, pad_w, act_min, act_max;
  int32_t in_rows, out_rows;         /* 0, or rows kept in a ring buffer (row y at y % rows; batch 1) */
} ember_pool_params;

typedef struct {
  int32_t outer, depth;
  int32_t input_mult, input_left_shift, diff_min;
} ember_softmax_params;

typedef struct {
  ember_shape in, out;               /* reduced axes have extent 1 in out */
  int32_t in_zp, out_zp, mult, shift;
} ember_mean_params;

typedef struct {
  int32_t size, in_offset, out_offset, mult, shift, act_min, act_max;
} ember_requant_params;

typedef struct {
  int32_t size;
  const int8_t *table;               /* out = table[(uint8_t)in]: LiteRT's outputs for all 256 inputs */
} ember_lut_params;

typedef struct {
  ember_shape in, out;
  int32_t before[4];                 /* padding before each NHWC axis */
  int32_t pad_value;
} ember_pad_params;

typedef struct {
  ember_shape in, out;
  int32_t perm[4];                   /* out axis i takes in axis perm[i] */
} ember_transpose_params;

int32_t ember_mbqm(int32_t x, int32_t mult, int32_t shift);
typedef struct { /* out[o0 + sum i_k * out_step[k]] = in[i0 + sum i_k * in_step[k]], 0 <= i_k < count[k] */
  int32_t count[4], in_start, in_step[4], out_start, out_step[4];
} ember_strided_params;

typedef struct { /* nearest neighbour: output row y reads input row ymap[y], column x reads xmap[x] */
  ember_shape in, out;
  const int32_t *ymap, *xmap;
} ember_resize_params;

typedef struct { /* filter [out.c, kh, kw, in.c]; output pixel (y, x) gathers input (y + pad - ky) / stride */
  ember_shape in, out;
  int32_t kh, kw, stride_h, stride_w, pad_h, pad_w, in_offset, out_offset, act_min, act_max;
  const int8_t *filter;
  const int32_t *bias, *mult;
  const int8_t *shift;
} ember_tconv_params;

typedef struct { /* int16 activations, int8 weights ("16x8"): CONV_2D (depth_mult 0) or DEPTHWISE_CONV_2D */
  ember_shape in, out;
  int32_t kh, kw, depth_mult, stride_h, stride_w, dil_h, dil_w, pad_h, pad_w, act_min, act_max;
  const int8_t *filter;                  /* conv [out.c, kh, kw, in.c]; depthwise [1, kh, kw, out.c] */
  const int64_t *bias;
  const int32_t *mult;
  const int8_t *shift;
} ember_conv16_params;

typedef struct { /* int16 activations, int8 weights ("16x8") FULLY_CONNECTED; filter [out_depth, in_depth] */
  int32_t batches, in_depth, out_depth, act_min, act_max, per_channel;
  const int8_t *filter;
  const int64_t *bias;
  const double *scale;                   /* LiteRT's reference rescales in double: round(acc * scale) */
} ember_fc16_params;

void ember_conv2d(const ember_conv_params *p, const int8_t *in, int8_t *out);
void ember_depthwise_conv2d(const ember_dwconv_params *p, const int8_t *in, int8_t *out);
/* Output rows [y0, y1) only: lets one layer produce the rows the next one needs into a ring buffer. */
void ember_conv2d_rows(const ember_conv_params *p, const int8_t *in, int8_t *out, int32_t y0, int32_t y1);
void ember_depthwise_conv2d_rows(const ember_dwconv_params *p, const int8_t *in, int8_t *out, int32_t y0,
                                 int32_t y1);
void ember_avg_pool_rows(const ember_pool_params *p, const int8_t *in, int8_t *out, int32_t y0, int32_t y1);
void ember_max_pool_rows(const ember_pool_params *p, const int8_t *in, int8_t *out, int32_t y0, int32_t y1);
void ember_fully_connected(const ember_fc_params *p, const int8_t *in, int8_t *out);
void ember_add(const ember_add_params *p, const int8_t *a, const int8_t *b, int8_t *out);
void ember_mul(const ember_mul_params *p, const int8_t *a, const int8_t *b, int8_t *out);
void ember_avg_pool(const ember_pool_params *p, const int8_t *in, int8_t *out);
void ember_max_pool(const ember_pool_params *p, const int8_t *in, int8_t *out);
void ember_softmax(const ember_softmax_params *p, const int8_t *in, int8_t *out);
void ember_mean(const ember_mean_params *p, const int8_t *in, int8_t *out);
void ember_requant(const ember_requant_params *p, const int8_t *in, int8_t *out);
void ember_lut(const ember_lut_params *p, const int8_t *in, int8_t *out);
void ember_pad(const ember_pad_params *p, const int8_t *in, int8_t *out);
void ember_transpose(const ember_transpose_params *p, const int8_t *in, int8_t *out);
void ember_copy(int32_t size, const int8_t *in, int8_t *out);
/* Strided copies: STRIDED_SLICE, SLICE, SPLIT (one per output), CONCATENATION (one per input). */
void ember_strided_copy(const ember_strided_params *p, const int8_t *in, int8_t *out);
void ember_resize_nearest(const ember_resize_params *p, const int8_t *in, int8_t *out);
void ember_transpose_conv(const ember_tconv_params *p, const int8_t *in, int8_t *out);
/* 16x8 kernels: int64 accumulators and bias, TFLite's 64-bit MultiplyByQuantizedMultiplier. */
void ember_conv2d_s16(const ember_conv16_params *p, const int16_t *in, int16_t *out);
void ember_fully_connected_s16(const ember_fc16_params *p, const int16_t *in, int16_t *out);

#ifdef __cplusplus
}
#endif
#endif /* EMBER_NN_H */
