/* Ember int8 kernels; see ember_nn.h. The arithmetic follows TFLite's reference kernels
 * (tflite/kernels/internal/reference/integer_ops, gemmlowp fixedpoint) step for step. */
#include "ember_nn.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
#include <string.h>
#if defined(__GNUC__) /* an unaligned 32-bit load even with -ffreestanding (no memcpy call) */
#define EMBER_LOAD32(dst, src) __builtin_memcpy((dst), (src), 4)
#else
#define EMBER_LOAD32(dst, src) memcpy((dst), (src), 4)
#endif
#endif

#define EMBER_MIN(a, b) ((a) < (b) ? (a) : (b))
#define EMBER_MAX(a, b) ((a) > (b) ? (a) : (b))

static inline int32_t srdhm(int32_t a, int32_t b) { /* SaturatingRoundingDoublingHighMul */
  int64_t v;
  if (a == b && a == INT32_MIN) return INT32_MAX;
  v = (int64_t)a * (int64_t)b;
  v += v >= 0 ? (1 << 30) : (1 - (1 << 30));
  /* v / 2^31 truncated toward zero, without a 64-bit division (arithmetic shift of negatives, as every
   * C compiler for our targets does it) */
  return (int32_t)((v < 0 ? v + (((int64_t)1 << 31) - 1) : v) >> 31);
}

static inline int32_t rdbpot(int32_t x, int32_t exponent) { /* RoundingDivideByPOT */
  uint32_t mask;
  int32_t remainder, threshold;
  if (exponent == 0) return x;
  mask = (uint32_t)(((uint64_t)1 << exponent) - 1u);
  remainder = (int32_t)((uint32_t)x & mask);
  threshold = (int32_t)(mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

static inline int32_t mbqm(int32_t x, int32_t mult, int32_t shift) { /* MultiplyByQuantizedMultiplier */
  const int32_t left = shift > 0 ? shift : 0;
  const int32_t right = shift > 0 ? 0 : -shift;
  return rdbpot(srdhm((int32_t)((uint32_t)x << left), mult), right);
}

int32_t ember_mbqm(int32_t x, int32_t mult, int32_t shift) { return mbqm(x, mult, shift); }

/* mbqm for shift = -right <= 0 and mult > 0 (so srdhm cannot saturate), mask = 2^right - 1 hoisted. */
static inline int32_t requant_right(int32_t x, int32_t mult, int32_t right, uint32_t mask) {
  int64_t v = (int64_t)x * mult;
  int32_t h;
  v += v >= 0 ? (1 << 30) : (1 - (1 << 30));
  h = (int32_t)((v < 0 ? v + (((int64_t)1 << 31) - 1) : v) >> 31);
  return (h >> right) + ((int32_t)((uint32_t)h & mask) > (int32_t)(mask >> 1) + (h < 0) ? 1 : 0);
}

static int8_t clamp8(int32_t v, int32_t lo, int32_t hi) {
  return (int8_t)EMBER_MIN(EMBER_MAX(v, lo), hi);
}

/* Storage row of image row y of batch b: a ring of `ring` rows (batch 1), or the full tensor. */
static int32_t row(int32_t b, int32_t y, int32_t h, int32_t ring) {
  return ring ? y % ring : b * h + y;
}

void ember_conv2d(const ember_conv_params *p, const int8_t *in, int8_t *out) {
  ember_conv2d_rows(p, in, out, 0, p->out.h);
}

static void matvec_rows(const ember_conv_params *p, const int8_t *in, int8_t *out, int32_t y0, int32_t y1);

void ember_conv2d_rows(const ember_conv_params *p, const int8_t *in, int8_t *out, int32_t y0, int32_t y1) {
  const int32_t groups = p->in.c / p->filter_c;
  const int32_t per_group = p->out.c / groups;
  int32_t b, oy, ox, oc, fy, fx, ic;
  if (p->interleave4) {
    matvec_rows(p, in, out, y0, y1);
    return;
  }
  for (b = 0; b < p->out.n; ++b)
    for (oy = y0; oy < y1; ++oy)
      for (ox = 0; ox < p->out.w; ++ox)
        for (oc = 0; oc < p->out.c; ++oc) {
          const int32_t base_c = (oc / per_group) * p->filter_c;
          int32_t acc = 0;
          for (fy = 0; fy < p->kh; ++fy) {
            const int32_t iy = oy * p->stride_h - p->pad_h + p->dil_h * fy;
            if (iy < 0 || iy >= p->in.h) continue;
            for (fx = 0; fx < p->kw; ++fx) {
              const int32_t ix = ox * p->stride_w - p->pad_w + p->dil_w * fx;
              const int8_t *src, *flt;
              if (ix < 0 || ix >= p->in.w) continue;
              src = in + ((row(b, iy, p->in.h, p->in_rows) * p->in.w + ix) * p->in.c + base_c);
              flt = p->filter + (((oc * p->kh + fy) * p->kw + fx) * p->filter_c);
              for (ic = 0; ic < p->filter_c; ++ic) acc += (int32_t)flt[ic] * ((int32_t)src[ic] + p->in_offset);
            }
          }
          if (p->bias) acc += p->bias[oc];
          acc = mbqm(acc, p->mult[oc], p->shift[oc]) + p->out_offset;
          out[(row(b, oy, p->out.h, p->out_rows) * p->out.w + ox) * p->out.c + oc] =
              clamp8(acc, p->act_min, p->act_max);
        }
}

void ember_depthwise_conv2d(const ember_dwconv_params *p, const int8_t *in, int8_t *out) {
  ember_depthwise_conv2d_rows(p, in, out, 0, p->out.h);
}

void ember_depthwise_conv2d_rows(const ember_dwconv_params *p, const int8_t *in, int8_t *out, int32_t y0,
                                 int32_t y1) {
  int32_t b, oy, ox, ic, m, fy, fx;
  for (b = 0; b < p->out.n; ++b)
    for (oy = y0; oy < y1; ++oy)
      for (ox = 0; ox < p->out.w; ++ox)
        for (ic = 0; ic < p->in.c; ++ic)
          for (m = 0; m < p->depth_mult; ++m) {
            const int32_t oc = m + ic * p->depth_mult;
            int32_t acc = 0;
            for (fy = 0; fy < p->kh; ++fy) {
              const int32_t iy = oy * p->stride_h - p->pad_h + p->dil_h * fy;
              if (iy < 0 || iy >= p->in.h) continue;
              for (fx = 0; fx < p->kw; ++fx) {
                const int32_t ix = ox * p->stride_w - p->pad_w + p->dil_w * fx;
                if (ix < 0 || ix >= p->in.w) continue;
                acc += (int32_t)p->filter[(fy * p->kw + fx) * p->out.c + oc] *
                       ((int32_t)in[(row(b, iy, p->in.h, p->in_rows) * p->in.w + ix) * p->in.c + ic] +
                        p->in_offset);
              }
            }
            if (p->bias) acc += p->bias[oc];
            acc = mbqm(acc, p->mult[oc], p->shift[oc]) + p->out_offset;
            out[(row(b, oy, p->out.h, p->out_rows) * p->out.w + ox) * p->out.c + oc] =
                clamp8(acc, p->act_min, p->act_max);
          }
}

#ifndef EMBER_FC_INTEGER_RESCALE
static int32_t round_double(double v) { /* std::round without libm: halves away from zero */
  const int64_t t = (int64_t)v;
  const double frac = v - (double)t; /* exact for |v| < 2^52 */
  if (frac >= 0.5) return (int32_t)(t + 1);
  if (frac <= -0.5) return (int32_t)(t - 1);
  return (int32_t)t;
}
#endif

/* LiteRT's reference FULLY_CONNECTED rescales the int32 accumulator in double precision
 * (round(acc * in_scale * filter_scale / out_scale)); TFLite Micro uses the integer multiplier.
 * Define EMBER_FC_INTEGER_RESCALE for the TFLite Micro arithmetic (no double math). */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#if defined(__GNUC__) /* SXTB16 with the rotation folded in (CMSIS-NN does the same) */
#define EMBER_SXTB16_ROR8(v) ({ uint32_t r_; __asm__("sxtb16 %0, %1, ror #8" : "=r"(r_) : "r"(v)); (int32_t)r_; })
#else
#define EMBER_SXTB16_ROR8(v) __sxtb16(((v) >> 8) | ((v) << 24))
#endif
/* acc[r] = sum_d row_r[d] * x[d] for one interleaved block of 4 rows (n % 4 == 0): SMLAD does two MACs,
 * x is unpacked once per 4 rows and one pointer walks the block. */
static void dot4(const int8_t *w, const int8_t *x, int32_t n, int32_t *acc) {
  const int8_t *end = x + n;
  int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  while (x != end) {
    uint32_t xv, v;
    int32_t xl, xh;
    EMBER_LOAD32(&xv, x);
    x += 4;
    xl = __sxtb16(xv);
    xh = EMBER_SXTB16_ROR8(xv);
    EMBER_LOAD32(&v, w);
    a0 = __smlad(xh, EMBER_SXTB16_ROR8(v), __smlad(xl, __sxtb16(v), a0));
    EMBER_LOAD32(&v, w + 4);
    a1 = __smlad(xh, EMBER_SXTB16_ROR8(v), __smlad(xl, __sxtb16(v), a1));
    EMBER_LOAD32(&v, w + 8);
    a2 = __smlad(xh, EMBER_SXTB16_ROR8(v), __smlad(xl, __sxtb16(v), a2));
    EMBER_LOAD32(&v, w + 12);
    a3 = __smlad(xh, EMBER_SXTB16_ROR8(v), __smlad(xl, __sxtb16(v), a3));
    w += 16;
  }
  acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
}
#endif

/* sum_d w[d * step] * (x[d] + offset), where row element d is at w[(d / 4) * step + d % 4] */
static int32_t dot_offset(const int8_t *w, const int8_t *x, int32_t n, int32_t offset, int32_t step) {
  int32_t acc = 0, d;
  for (d = 0; d < n; ++d) acc += (int32_t)w[(d >> 2) * step + (d & 3)] * ((int32_t)x[d] + offset);
  return acc;
}

static int32_t fc_rescale(const ember_fc_params *p, int32_t acc, int32_t ch) {
#ifdef EMBER_FC_INTEGER_RESCALE
  return mbqm(acc, p->mult[ch], p->shift[ch]);
#else
  if (p->fx_mult) { /* exact integer form of LiteRT's round(acc * scale), see quant.fc_fixed_point */
    const uint32_t mag = acc < 0 ? 0u - (uint32_t)acc : (uint32_t)acc;
    const uint32_t hi = (uint32_t)(((uint64_t)mag * p->fx_mult[ch]) >> 32); /* one UMULL */
    const int32_t r = (int32_t)((hi + (1u << (p->fx_shift - 1))) >> p->fx_shift);
    return acc < 0 ? -r : r;
  }
  return round_double((double)acc * p->scale[ch]);
#endif
}

static inline void fc_store(const ember_fc_params *p, int32_t acc, int32_t o, int8_t *out) {
  if (p->bias) acc += p->bias[o];
  acc = fc_rescale(p, acc, p->per_channel ? o : 0) + p->out_offset;
  out[o] = clamp8(acc, p->act_min, p->act_max);
}

void ember_fully_connected(const ember_fc_params *p, const int8_t *in, int8_t *out) {
  int32_t b, o;
  for (b = 0; b < p->batches; ++b) {
    const int8_t *x = in + b * p->in_depth;
    int8_t *y = out + b * p->out_depth;
    const int32_t blocked = p->interleave4 ? p->out_depth & ~3 : 0;
    o = 0;
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
    if (p->in_offset == 0) /* the exporter folds the input offset into the bias */
      for (; o < blocked; o += 4) {
        int32_t acc[4], r;
        dot4(p->filter + o * p->in_depth, x, p->in_depth, acc);
        for (r = 0; r < 4; ++r) fc_store(p, acc[r], o + r, y);
      }
#endif
    for (; o < blocked; ++o) /* row o of block o / 4: its bytes start at block + (o % 4) * 4, step 16 */
      fc_store(p, dot_offset(p->filter + (o & ~3) * p->in_depth + (o & 3) * 4, x, p->in_depth, p->in_offset, 16),
               o, y);
    for (; o < p->out_depth; ++o)
      fc_store(p, dot_offset(p->filter + o * p->in_depth, x, p->in_depth, p->in_offset, 4), o, y);
  }
}

/* 1x1 convolution (no padding, one group) as per-pixel matrix-vector products: weights interleaved in
 * blocks of 4 output channels (like FULLY_CONNECTED), the input offset folded into the bias and every
 * shift <= 0 (both arranged at export). Parameters are copied to locals: stores through int8_t * could
 * alias *p and force reloads. */
/* All output channels of one pixel from its input vector x (len bytes, len % 4 == 0 when blocked):
 * weights interleaved in blocks of 4 output channels, the input offset folded into the bias and every
 * shift <= 0 (all arranged at export). */
static void matvec_pixel(const ember_conv_params *p, const int8_t *x, int32_t len, int8_t *y) {
  const int32_t cout = p->out.c, blocked = cout & ~3, zp = p->out_offset, lo = p->act_min, hi = p->act_max;
  const int8_t *filter = p->filter, *shift = p->shift;
  const int32_t *bias = p->bias, *mult = p->mult;
  int32_t o, acc[4];
  for (o = 0; o < cout; ++o) {
    const int32_t r = o & 3, right = -shift[o];
    if (o >= blocked)
      acc[0] = dot_offset(filter + o * len, x, len, 0, 4);
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
    else if (r == 0)
      dot4(filter + o * len, x, len, acc);
#else
    else
      acc[r] = dot_offset(filter + (o - r) * len + r * 4, x, len, 0, 16);
#endif
    y[o] = clamp8(requant_right(acc[o >= blocked ? 0 : r] + (bias ? bias[o] : 0), mult[o], right,
                                (1u << right) - 1u) + zp, lo, hi);
  }
}

/* Pixel by pixel: 1x1 convolutions read the pixel's channels in place; others first gather the
 * receptive field into p->patch (taps outside the image hold the input zero point, which with the
 * folded offset contributes exactly 0; the tail to the 4-byte multiple is 0, as its weights). */
static void matvec_rows(const ember_conv_params *p, const int8_t *in, int8_t *out, int32_t y0, int32_t y1) {
  const int32_t cin = p->in.c, in_w = p->in.w, in_h = p->in.h, out_w = p->out.w, len = p->interleave4;
  int32_t b, oy, ox, fy, fx, c;
  for (b = 0; b < p->out.n; ++b)
    for (oy = y0; oy < y1; ++oy)
      for (ox = 0; ox < out_w; ++ox) {
        int8_t *y = out + (row(b, oy, p->out.h, p->out_rows) * out_w + ox) * p->out.c;
        int8_t *patch = p->patch, *dst = patch;
        if (!patch) {
          matvec_pixel(p, in + (row(b, oy * p->stride_h, in_h, p->in_rows) * in_w + ox * p->stride_w) * cin, cin, y);
          continue;
        }
        for (fy = 0; fy < p->kh; ++fy) {
          const int32_t iy = oy * p->stride_h - p->pad_h + p->dil_h * fy;
          for (fx = 0; fx < p->kw; ++fx, dst += cin) {
            const int32_t ix = ox * p->stride_w - p->pad_w + p->dil_w * fx;
            if (iy < 0 || iy >= in_h || ix < 0 || ix >= in_w) {
              for (c = 0; c < cin; ++c) dst[c] = (int8_t)p->pad_value;
            } else {
              const int8_t *src = in + (row(b, iy, in_h, p->in_rows) * in_w + ix) * cin;
              for (c = 0; c < cin; ++c) dst[c] = src[c];
            }
          }
        }
        while (dst < patch + len) *dst++ = 0;
        matvec_pixel(p, patch, len, y);
      }
}

void ember_add(const ember_add_params *p, const int8_t *a, const int8_t *b, int8_t *out) {
  int32_t i;
  if (p->lut1 && p->lut2 && p->out_shift <= 0 && p->out_mult > 0) {
    /* locals: stores through int8_t * could alias *p and force reloads */
    const int32_t *lut1 = p->lut1, *lut2 = p->lut2, n = p->size, mult = p->out_mult, right = -p->out_shift;
    const int32_t offset = p->out_offset, lo = p->act_min, hi = p->act_max, n2 = p->size2 ? p->size2 : n;
    const uint32_t mask = (uint32_t)(((uint64_t)1 << right) - 1u);
    int32_t j = 0;
    if (n2 == n) /* same shapes: no repetition counter in the loop */
      for (i = 0; i < n; ++i)
        out[i] = clamp8(requant_right(lut1[(uint8_t)a[i]] + lut2[(uint8_t)b[i]], mult, right, mask) + offset,
                        lo, hi);
    else
      for (i = 0; i < n; ++i) {
        out[i] = clamp8(requant_right(lut1[(uint8_t)a[i]] + lut2[(uint8_t)b[j]], mult, right, mask) + offset,
                        lo, hi);
        if (++j == n2) j = 0;
      }
    return;
  }
  for (i = 0; i < p->size; ++i) {
    const int32_t x1 = ((int32_t)a[i] + p->in1_offset) * (1 << p->left_shift);
    const int32_t x2 = ((int32_t)b[i] + p->in2_offset) * (1 << p->left_shift);
    const int32_t s1 = mbqm(x1, p->in1_mult, p->in1_shift);
    const int32_t s2 = mbqm(x2, p->in2_mult, p->in2_shift);
    const int32_t r = mbqm(s1 + s2, p->out_mult, p->out_shift) + p->out_offset;
    out[i] = clamp8(r, p->act_min, p->act_max);
  }
}

static void pool(const ember_pool_params *p, const int8_t *in, int8_t *out, int is_max, int32_t y0,
                 int32_t y1) {
  int32_t b, oy, ox, c, fy, fx;
  for (b = 0; b < p->out.n; ++b)
    for (oy = y0; oy < y1; ++oy)
      for (ox = 0; ox < p->out.w; ++ox)
        for (c = 0; c < p->out.c; ++c) {
          const int32_t iy0 = oy * p->stride_h - p->pad_h, ix0 = ox * p->stride_w - p->pad_w;
          const int32_t fy0 = EMBER_MAX(0, -iy0), fy1 = EMBER_MIN(p->kh, p->in.h - iy0);
          const int32_t fx0 = EMBER_MAX(0, -ix0), fx1 = EMBER_MIN(p->kw, p->in.w - ix0);
          int32_t acc = is_max ? -128 : 0, count = 0;
          for (fy = fy0; fy < fy1; ++fy)
            for (fx = fx0; fx < fx1; ++fx) {
              const int32_t v = in[(row(b, iy0 + fy, p->in.h, p->in_rows) * p->in.w + ix0 + fx) * p->in.c + c];
              if (is_max) acc = EMBER_MAX(acc, v); else acc += v;
              ++count;
            }
          if (!is_max && count > 0)
            acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
          out[(row(b, oy, p->out.h, p->out_rows) * p->out.w + ox) * p->out.c + c] =
              clamp8(acc, p->act_min, p->act_max);
        }
}

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#if defined(__GNUC__)
#define EMBER_SXTAB16_ROR8(a, v) ({ uint32_t r_; __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r_) : "r"(a), "r"(v)); r_; })
#else
#define EMBER_SXTAB16_ROR8(a, v) __sxtab16((a), ((v) >> 8) | ((v) << 24))
#endif
static int32_t avg_round(int32_t acc, int32_t count) {
  return acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
}

/* Global average pooling (one window covering the whole image, no padding; channels % 4 == 0 and at most
 * 256 pixels, so every channel's sum fits a 16-bit lane): SXTAB16 adds two channels per instruction. */
static int global_avg_pool(const ember_pool_params *p, const int8_t *in, int8_t *out) {
  const int32_t cin = p->in.c, count = p->in.h * p->in.w;
  int32_t c, i, k;
  if (p->out.n != 1 || p->out.h != 1 || p->out.w != 1 || p->kh != p->in.h || p->kw != p->in.w || p->pad_h ||
      p->pad_w || p->in_rows || (cin & 3) || count > 256)
    return 0;
  for (c = 0; c < cin; c += 4) {
    const int8_t *x = in + c;
    uint32_t even = 0, odd = 0; /* lanes: channels c, c + 2 and c + 1, c + 3 */
    for (i = 0; i < count; ++i, x += cin) {
      uint32_t v;
      EMBER_LOAD32(&v, x);
      even = __sxtab16(even, v);
      odd = EMBER_SXTAB16_ROR8(odd, v);
    }
    {
      const int32_t sums[4] = {(int16_t)(even & 0xffff), (int16_t)(odd & 0xffff), (int16_t)(even >> 16),
                               (int16_t)(odd >> 16)};
      for (k = 0; k < 4; ++k) out[c + k] = clamp8(avg_round(sums[k], count), p->act_min, p->act_max);
    }
  }
  return 1;
}
#endif

void ember_avg_pool(const ember_pool_params *p, const int8_t *in, int8_t *out) {
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
  if (global_avg_pool(p, in, out)) return;
#endif
  pool(p, in, out, 0, 0, p->out.h);
}
void ember_max_pool(const ember_pool_params *p, const int8_t *in, int8_t *out) { pool(p, in, out, 1, 0, p->out.h); }
void ember_avg_pool_rows(const ember_pool_params *p, const int8_t *in, int8_t *out, int32_t y0, int32_t y1) {
  pool(p, in, out, 0, y0, y1);
}
void ember_max_pool_rows(const ember_pool_params *p, const int8_t *in, int8_t *out, int32_t y0, int32_t y1) {
  pool(p, in, out, 1, y0, y1);
}

/* ---- gemmlowp fixed point, int32 raw values ---- */
static int32_t sat_shl(int32_t x, int32_t e) { /* SaturatingRoundingMultiplyByPOT, e > 0 */
  const int32_t threshold = (int32_t)(((int64_t)1 << (31 - e)) - 1);
  if (x > threshold) return INT32_MAX;
  if (x < -threshold) return INT32_MIN;
  return (int32_t)((uint32_t)x << e);
}

static int32_t exp_quarter(int32_t a) { /* exp on [-1/4, 0), Q0.31 */
  const int32_t constant_term = 1895147668, one_third = 715827883;
  const int32_t x = a + (1 << 28);
  const int32_t x2 = srdhm(x, x), x3 = srdhm(x2, x), x4 = srdhm(x2, x2);
  const int32_t x4_over_4 = rdbpot(x4, 2);
  const int32_t poly = rdbpot(srdhm(x4_over_4 + x3, one_third) + x2, 1);
  return constant_term + srdhm(constant_term, x + poly);
}

static int32_t exp_on_negative_values(int32_t a) { /* input Q5.26, result Q0.31 */
  static const int32_t mults[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
  const int32_t quarter = 1 << 24, mask = (1 << 24) - 1;
  const int32_t a_mod = (a & mask) - quarter;
  int32_t result = exp_quarter(sat_shl(a_mod, 5));
  const int32_t remainder = a_mod - a;
  int32_t k;
  for (k = 0; k < 7; ++k)
    if (remainder & (1 << (24 + k))) result = srdhm(result, mults[k]);
  return a == 0 ? INT32_MAX : result;
}

static int32_t one_over_one_plus_x(int32_t a) { /* Q0.31 in [0,1) -> Q0.31 of 1/(1+a) */
  const int64_t sum = (int64_t)a + INT32_MAX;
  const int32_t half_den = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
  int32_t x = 1515870810 + srdhm(half_den, -1010580540); /* Q2.29 */
  int i;
  for (i = 0; i < 3; ++i) {
    const int32_t hdx = srdhm(half_den, x);
    const int32_t one_minus = (1 << 29) - hdx;
    x = x + sat_shl(srdhm(x, one_minus), 2);
  }
  return sat_shl(x, 1);
}

static int32_t clz32(uint32_t x) {
  int32_t n = 0;
  if (x == 0) return 32;
  while (!(x & 0x80000000u)) { x <<= 1; ++n; }
  return n;
}

void ember_softmax(const ember_softmax_params *p, const int8_t *in, int8_t *out) {
  int32_t i, c;
  for (i = 0; i < p->outer; ++i) {
    const int8_t *x = in + i * p->depth;
    int8_t *y = out + i * p->depth;
    int32_t max_in = -128, sum = 0, headroom, bits_over_unit, scale;
    for (c = 0; c < p->depth; ++c) max_in = EMBER_MAX(max_in, (int32_t)x[c]);
    for (c = 0; c < p->depth; ++c) {
      const int32_t diff = (int32_t)x[c] - max_in;
      if (diff >= p->diff_min) {
        const int32_t scaled = srdhm(diff * (1 << p->input_left_shift), p->input_mult);
        sum += rdbpot(exp_on_negative_values(scaled), 12); /* Rescale to Q12.19 */
      }
    }
    headroom = clz32((uint32_t)sum);
    bits_over_unit = 12 - headroom;
    scale = one_over_one_plus_x((int32_t)(((uint32_t)sum << headroom) - ((uint32_t)1 << 31)));
    for (c = 0; c < p->depth; ++c) {
      const int32_t diff = (int32_t)x[c] - max_in;
      if (diff >= p->diff_min) {
        const int32_t scaled = srdhm(diff * (1 << p->input_left_shift), p->input_mult);
        const int32_t e = exp_on_negative_values(scaled);
        const int32_t v = rdbpot(srdhm(scale, e), bits_over_unit + 31 - 8) - 128;
        y[c] = clamp8(v, -128, 127);
      } else {
        y[c] = -128;
      }
    }
  }
}

void ember_mean(const ember_mean_params *p, const int8_t *in, int8_t *out) {
  const int32_t rn = p->out.n == p->in.n ? 0 : 1, rh = p->out.h == p->in.h ? 0 : 1;
  const int32_t rw = p->out.w == p->in.w ? 0 : 1, rc = p->out.c == p->in.c ? 0 : 1;
  const int32_t count = (rn ? p->in.n : 1) * (rh ? p->in.h : 1) * (rw ? p->in.w : 1) * (rc ? p->in.c : 1);
  int32_t b, y, x, c, ib, iy, ix, ic;
  for (b = 0; b < p->out.n; ++b)
    for (y = 0; y < p->out.h; ++y)
      for (x = 0; x < p->out.w; ++x)
        for (c = 0; c < p->out.c; ++c) {
          int32_t sum = 0, r;
          for (ib = rn ? 0 : b; ib < (rn ? p->in.n : b + 1); ++ib)
            for (iy = rh ? 0 : y; iy < (rh ? p->in.h : y + 1); ++iy)
              for (ix = rw ? 0 : x; ix < (rw ? p->in.w : x + 1); ++ix)
                for (ic = rc ? 0 : c; ic < (rc ? p->in.c : c + 1); ++ic)
                  sum += in[((ib * p->in.h + iy) * p->in.w + ix) * p->in.c + ic];
          r = mbqm(sum - p->in_zp * count, p->mult, p->shift) + p->out_zp;
          out[((b * p->out.h + y) * p->out.w + x) * p->out.c + c] = clamp8(r, -128, 127);
        }
}

void ember_requant(const ember_requant_params *p, const int8_t *in, int8_t *out) {
  int32_t i;
  for (i = 0; i < p->size; ++i) {
    const int32_t v = p->out_offset + mbqm((int32_t)in[i] - p->in_offset, p->mult, p->shift);
    out[i] = clamp8(v, p->act_min, p->act_max);
  }
}

void ember_mul(const ember_mul_params *p, const int8_t *a, const int8_t *b, int8_t *out) {
  const int32_t n = p->size, n2 = p->size2 ? p->size2 : n, off1 = p->in1_offset, off2 = p->in2_offset;
  const int32_t zp = p->out_offset, mult = p->mult, shift = p->shift, lo = p->act_min, hi = p->act_max;
  int32_t i, j = 0;
  for (i = 0; i < n; ++i) {
    out[i] = clamp8(mbqm(((int32_t)a[i] + off1) * ((int32_t)b[j] + off2), mult, shift) + zp, lo, hi);
    if (++j == n2) j = 0;
  }
}

void ember_lut(const ember_lut_params *p, const int8_t *in, int8_t *out) {
  const int8_t *table = p->table;
  const int32_t n = p->size;
  int32_t i;
  for (i = 0; i < n; ++i) out[i] = table[(uint8_t)in[i]];
}

void ember_pad(const ember_pad_params *p, const int8_t *in, int8_t *out) {
  int32_t b, y, x, c;
  for (b = 0; b < p->out.n; ++b)
    for (y = 0; y < p->out.h; ++y)
      for (x = 0; x < p->out.w; ++x)
        for (c = 0; c < p->out.c; ++c) {
          const int32_t ib = b - p->before[0], iy = y - p->before[1];
          const int32_t ix = x - p->before[2], ic = c - p->before[3];
          const int inside = ib >= 0 && ib < p->in.n && iy >= 0 && iy < p->in.h && ix >= 0 &&
                             ix < p->in.w && ic >= 0 && ic < p->in.c;
          out[((b * p->out.h + y) * p->out.w + x) * p->out.c + c] =
              inside ? in[((ib * p->in.h + iy) * p->in.w + ix) * p->in.c + ic] : (int8_t)p->pad_value;
        }
}

void ember_transpose(const ember_transpose_params *p, const int8_t *in, int8_t *out) {
  const int32_t in_dims[4] = {p->in.n, p->in.h, p->in.w, p->in.c};
  int32_t in_strides[4], idx[4], o = 0;
  in_strides[3] = 1;
  in_strides[2] = in_dims[3];
  in_strides[1] = in_dims[3] * in_dims[2];
  in_strides[0] = in_strides[1] * in_dims[1];
  for (idx[0] = 0; idx[0] < p->out.n; ++idx[0])
    for (idx[1] = 0; idx[1] < p->out.h; ++idx[1])
      for (idx[2] = 0; idx[2] < p->out.w; ++idx[2])
        for (idx[3] = 0; idx[3] < p->out.c; ++idx[3])
          out[o++] = in[idx[0] * in_strides[p->perm[0]] + idx[1] * in_strides[p->perm[1]] +
                        idx[2] * in_strides[p->perm[2]] + idx[3] * in_strides[p->perm[3]]];
}

void ember_copy(int32_t size, const int8_t *in, int8_t *out) {
  int32_t i;
  for (i = 0; i < size; ++i) out[i] = in[i];
}

void ember_strided_copy(const ember_strided_params *p, const int8_t *in, int8_t *out) {
  int32_t a, b, c, d;
  for (a = 0; a < p->count[0]; ++a)
    for (b = 0; b < p->count[1]; ++b)
      for (c = 0; c < p->count[2]; ++c) {
        const int8_t *x = in + p->in_start + a * p->in_step[0] + b * p->in_step[1] + c * p->in_step[2];
        int8_t *y = out + p->out_start + a * p->out_step[0] + b * p->out_step[1] + c * p->out_step[2];
        for (d = 0; d < p->count[3]; ++d) y[d * p->out_step[3]] = x[d * p->in_step[3]];
      }
}

void ember_resize_nearest(const ember_resize_params *p, const int8_t *in, int8_t *out) {
  const int32_t c = p->out.c;
  int32_t b, y, x, k;
  for (b = 0; b < p->out.n; ++b)
    for (y = 0; y < p->out.h; ++y)
      for (x = 0; x < p->out.w; ++x) {
        const int8_t *src = in + ((b * p->in.h + p->ymap[y]) * p->in.w + p->xmap[x]) * c;
        for (k = 0; k < c; ++k) *out++ = src[k];
      }
}

/* LiteRT scatters every input pixel into an int32 buffer; each output element here gathers the same
 * products (int32 sums do not depend on their order), so no buffer is needed. */
void ember_transpose_conv(const ember_tconv_params *p, const int8_t *in, int8_t *out) {
  int32_t b, oy, ox, oc, ky, kx, ic;
  for (b = 0; b < p->out.n; ++b)
    for (oy = 0; oy < p->out.h; ++oy)
      for (ox = 0; ox < p->out.w; ++ox)
        for (oc = 0; oc < p->out.c; ++oc) {
          int32_t acc = 0;
          for (ky = 0; ky < p->kh; ++ky) {
            const int32_t ty = oy + p->pad_h - ky, iy = ty / p->stride_h;
            if (ty < 0 || ty % p->stride_h || iy >= p->in.h) continue;
            for (kx = 0; kx < p->kw; ++kx) {
              const int32_t tx = ox + p->pad_w - kx, ix = tx / p->stride_w;
              const int8_t *x, *w;
              if (tx < 0 || tx % p->stride_w || ix >= p->in.w) continue;
              x = in + ((b * p->in.h + iy) * p->in.w + ix) * p->in.c;
              w = p->filter + ((oc * p->kh + ky) * p->kw + kx) * p->in.c;
              for (ic = 0; ic < p->in.c; ++ic) acc += ((int32_t)x[ic] + p->in_offset) * (int32_t)w[ic];
            }
          }
          if (p->bias) acc += p->bias[oc];
          acc = mbqm(acc, p->mult[oc], p->shift[oc]) + p->out_offset;
          out[((b * p->out.h + oy) * p->out.w + ox) * p->out.c + oc] = clamp8(acc, p->act_min, p->act_max);
        }
}

/* MultiplyByQuantizedMultiplier(int64_t x, ...) of TFLite's common.h: the multiplier rounded to 16 bits. */
static int32_t mbqm64(int64_t x, int32_t mult, int32_t shift) {
  const int64_t reduced = mult < 0x7FFF0000 ? (mult + (1 << 15)) >> 16 : 0x7FFF;
  const int32_t total = 15 - shift;
  return (int32_t)((x * reduced + ((int64_t)1 << (total - 1))) >> total);
}

static int16_t clamp16(int32_t v, int32_t lo, int32_t hi) { return (int16_t)(v < lo ? lo : v > hi ? hi : v); }

void ember_conv2d_s16(const ember_conv16_params *p, const int16_t *in, int16_t *out) {
  const int32_t cin = p->in.c, dw = p->depth_mult > 0;
  int32_t b, oy, ox, oc, fy, fx, ic;
  for (b = 0; b < p->out.n; ++b)
    for (oy = 0; oy < p->out.h; ++oy)
      for (ox = 0; ox < p->out.w; ++ox)
        for (oc = 0; oc < p->out.c; ++oc) {
          int64_t acc = 0;
          for (fy = 0; fy < p->kh; ++fy) {
            const int32_t iy = oy * p->stride_h - p->pad_h + p->dil_h * fy;
            if (iy < 0 || iy >= p->in.h) continue;
            for (fx = 0; fx < p->kw; ++fx) {
              const int32_t ix = ox * p->stride_w - p->pad_w + p->dil_w * fx;
              const int16_t *x = in + ((b * p->in.h + iy) * p->in.w + ix) * cin;
              if (ix < 0 || ix >= p->in.w) continue;
              if (dw) {
                acc += (int64_t)p->filter[(fy * p->kw + fx) * p->out.c + oc] * x[oc / p->depth_mult];
              } else {
                const int8_t *w = p->filter + ((oc * p->kh + fy) * p->kw + fx) * cin;
                for (ic = 0; ic < cin; ++ic) acc += (int32_t)w[ic] * x[ic];
              }
            }
          }
          if (p->bias) acc += p->bias[oc];
          out[((b * p->out.h + oy) * p->out.w + ox) * p->out.c + oc] =
              clamp16(mbqm64(acc, p->mult[oc], p->shift[oc]), p->act_min, p->act_max);
        }
}

static int64_t round_half_away(double v) { /* std::round without libm, |v| < 2^52 */
  const int64_t t = (int64_t)v;
  const double frac = v - (double)t;
  return frac >= 0.5 ? t + 1 : frac <= -0.5 ? t - 1 : t;
}

void ember_fully_connected_s16(const ember_fc16_params *p, const int16_t *in, int16_t *out) {
  int32_t b, o, d;
  for (b = 0; b < p->batches; ++b)
    for (o = 0; o < p->out_depth; ++o) {
      const int8_t *w = p->filter + o * p->in_depth;
      const int16_t *x = in + b * p->in_depth;
      const int32_t ch = p->per_channel ? o : 0;
      int64_t acc = 0;
      for (d = 0; d < p->in_depth; ++d) acc += (int32_t)w[d] * x[d];
      if (p->bias) acc += p->bias[o];
      acc = round_half_away((double)acc * p->scale[ch]);
      out[b * p->out_depth + o] = (int16_t)(acc < p->act_min ? p->act_min : acc > p->act_max ? p->act_max : acc);
    }
}
