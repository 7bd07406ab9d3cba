/* Host runner of the ECG front end: int16 samples (360 Hz, 200/mV) on stdin; for every beat writes
 * r (int32), window[128] (int16), template[128] (int16), rr[8] (int32) to stdout. */
#include <stdint.h>
#include <stdio.h>
#include "ember_ecg_frontend.h"

static void put(const ember_ecg_beat *b) {
  fwrite(&b->r, 4, 1, stdout);
  fwrite(b->window, 2, EMBER_ECG_LEN, stdout);
  fwrite(b->templ, 2, EMBER_ECG_LEN, stdout);
  fwrite(b->rr, 4, EMBER_ECG_NRR, stdout);
}

int main(void) {
  static ember_ecg_state st;
  static ember_ecg_beat beats[4];
  static int16_t buf[4096];
  size_t got;
  ember_ecg_init(&st);
  while ((got = fread(buf, 2, 4096, stdin)) > 0) {
    for (size_t i = 0; i < got; ++i) {
      int n = ember_ecg_push(&st, buf[i], beats, 4);
      for (int k = 0; k < n; ++k) put(&beats[k]);
    }
  }
  if (ember_ecg_flush(&st, beats)) put(&beats[0]);
  return 0;
}
