/* Ember keyword-spotting front end (see ember_kws_frontend.h). Each step mirrors
 * sdk/features/fixed_point.py; rounding is (v + 2^(s-1)) >> s with arithmetic shifts. */
#include "ember_kws_frontend.h"
#include "ember_kws_tables.h"

/* The rounding below relies on >> of negative values being an arithmetic shift (gcc, clang, armcc). */
typedef char ember_kws_arithmetic_shift_check[((-1) >> 1) == -1 ? 1 : -1];

#define KWS_WINDOW_SHIFT 9   /* Q15 window, keep 6 fractional bits: 15 - 6 */
#define KWS_TWIDDLE_BITS 15
#define KWS_POWER_SHIFT 12   /* (6 fractional bits) * 2 */
#define KWS_MEL_BITS 12
#define KWS_LOG_BITS 16
#define KWS_LUT_BITS 6
#define KWS_GAIN_SHIFT 20
#define KWS_BINS (EMBER_KWS_FFT_SIZE / 2 + 1)

static int32_t kws_re[EMBER_KWS_FFT_SIZE];
static int32_t kws_im[EMBER_KWS_FFT_SIZE];

static void kws_fft(void) {
  int half, start, j, step = EMBER_KWS_FFT_SIZE / 2;
  for (half = 1; half < EMBER_KWS_FFT_SIZE; half <<= 1, step >>= 1) {
    for (start = 0; start < EMBER_KWS_FFT_SIZE; start += 2 * half) {
      for (j = 0; j < half; ++j) {
        const int64_t c = ember_kws_cos[j * step], s = ember_kws_sin[j * step];
        const int a = start + j, b = a + half;
        const int64_t br = kws_re[b], bi = kws_im[b];
        const int32_t tr = (int32_t)((br * c + bi * s + (1 << (KWS_TWIDDLE_BITS - 1))) >> KWS_TWIDDLE_BITS);
        const int32_t ti = (int32_t)((bi * c - br * s + (1 << (KWS_TWIDDLE_BITS - 1))) >> KWS_TWIDDLE_BITS);
        kws_re[b] = kws_re[a] - tr;
        kws_im[b] = kws_im[a] - ti;
        kws_re[a] += tr;
        kws_im[a] += ti;
      }
    }
  }
}

static int kws_msb(int64_t v) {
  int m = 0, s;
  for (s = 32; s > 0; s >>= 1) {
    if ((v >> s) != 0) {
      m += s;
      v >>= s;
    }
  }
  return m;
}

static int32_t kws_log2_q16(int64_t v) {
  const int m = kws_msb(v);
  const int rbits = KWS_LOG_BITS - KWS_LUT_BITS;
  const int32_t frac = (int32_t)(m < KWS_LOG_BITS ? v << (KWS_LOG_BITS - m) : v >> (m - KWS_LOG_BITS)) -
                       (1 << KWS_LOG_BITS);
  const int32_t i = frac >> rbits, r = frac & ((1 << rbits) - 1);
  const int32_t lo = ember_kws_log2_lut[i], hi = ember_kws_log2_lut[i + 1];
  return ((int32_t)m << KWS_LOG_BITS) + lo + (((hi - lo) * r + (1 << (rbits - 1))) >> rbits);
}

void ember_kws_frame(const int16_t *window, uint8_t *features) {
  int64_t acc[EMBER_KWS_CHANNELS + 2];
  unsigned rev;
  int i;
  for (i = 0, rev = 0; i < EMBER_KWS_FFT_SIZE; ++i) { /* windowed, zero-padded, bit-reversed order */
    unsigned bit = EMBER_KWS_FFT_SIZE / 2;
    kws_re[rev] = i < EMBER_KWS_WINDOW ? ((int32_t)window[i] * ember_kws_window[i] + (1 << (KWS_WINDOW_SHIFT - 1)))
                                             >> KWS_WINDOW_SHIFT : 0;
    kws_im[rev] = 0;
    while (rev & bit) { /* rev = bit-reversed i + 1 */
      rev ^= bit;
      bit >>= 1;
    }
    rev |= bit;
  }
  kws_fft();
  for (i = 0; i < EMBER_KWS_CHANNELS + 2; ++i) acc[i] = 0;
  for (i = 0; i < KWS_BINS; ++i) {
    const int seg = ember_kws_mel_segment[i];
    int64_t power;
    if (seg == 255) continue;
    power = ((int64_t)kws_re[i] * kws_re[i] + (int64_t)kws_im[i] * kws_im[i]) >> KWS_POWER_SHIFT;
    acc[seg + 1] += power * ember_kws_mel_weight[i];
    acc[seg] += power * ((1 << KWS_MEL_BITS) - ember_kws_mel_weight[i]);
  }
  for (i = 0; i < EMBER_KWS_CHANNELS; ++i) {
    const int32_t lg = kws_log2_q16((acc[i + 1] >> KWS_MEL_BITS) + 1);
    const int64_t q = ((int64_t)lg * EMBER_KWS_GAIN_Q4 + (1 << (KWS_GAIN_SHIFT - 1))) >> KWS_GAIN_SHIFT;
    features[i] = (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
  }
}

int ember_kws_features(const int16_t *pcm, int n_samples, uint8_t *features) {
  int f, frames;
  if (n_samples < EMBER_KWS_WINDOW) return 0;
  frames = 1 + (n_samples - EMBER_KWS_WINDOW) / EMBER_KWS_STRIDE;
  for (f = 0; f < frames; ++f)
    ember_kws_frame(pcm + (long)f * EMBER_KWS_STRIDE, features + (long)f * EMBER_KWS_CHANNELS);
  return frames;
}

void ember_kws_to_int8(const uint8_t *features, int n, int8_t *out) {
  int i;
  for (i = 0; i < n; ++i) out[i] = ember_kws_int8_lut[features[i]];
}
