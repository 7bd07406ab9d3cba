/* Cortex-M check of the ECG front end: streams the samples in ecg_verify_data.h through it and
 * compares every beat (R sample, window, template, RR features) with Python's; prints
 * "ecg-verify: OK <beats>" or "ecg-verify: FAIL <beat>" over semihosting, exits 0 when all match. */
#include <stdint.h>
#include "ember_ecg_frontend.h"
#include "ecg_verify_data.h"

void ember_puts(const char *s);

static int same(const ember_ecg_beat *b, int k) {
  const int32_t *f = &ecg_verify_features[k * (2 * EMBER_ECG_LEN + EMBER_ECG_NRR)];
  if (k >= ECG_VERIFY_BEATS || b->r != ecg_verify_r[k]) return 0;
  for (int j = 0; j < EMBER_ECG_LEN; ++j)
    if (b->window[j] != f[j] || b->templ[j] != f[EMBER_ECG_LEN + j]) return 0;
  for (int j = 0; j < EMBER_ECG_NRR; ++j)
    if (b->rr[j] != f[2 * EMBER_ECG_LEN + j]) return 0;
  return 1;
}

static void put_num(char *p, int v) {  /* 5 digits */
  for (int i = 4; i >= 0; --i) { p[i] = (char)('0' + v % 10); v /= 10; }
}

int main(void) {
  static ember_ecg_state st;
  static ember_ecg_beat beats[4];
  static char ok_line[] = "ecg-verify: OK 00000 beats\n", bad_line[] = "ecg-verify: FAIL at beat 00000\n";
  int k = 0, good = 1;
  ember_ecg_init(&st);
  for (int i = 0; i < ECG_VERIFY_SAMPLES && good; ++i) {
    int n = ember_ecg_push(&st, ecg_verify_samples[i], beats, 4);
    for (int j = 0; j < n && good; ++j, ++k) good = same(&beats[j], k);
  }
  if (good && ember_ecg_flush(&st, beats)) { good = same(&beats[0], k); ++k; }
  good = good && k == ECG_VERIFY_BEATS;
  put_num(good ? ok_line + 15 : bad_line + 25, k);
  ember_puts(good ? ok_line : bad_line);
  return good ? 0 : 1;
}
