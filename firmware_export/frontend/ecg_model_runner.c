/* Host runner for an exported beat classifier with the ECG front end: int16 samples (360 Hz) on
 * stdin; for every beat writes r (int32) and the model's int8 output (EMBER_OUT_SIZE bytes).
 * Built with -include MODEL.h -DEMBER_INVOKE=... -DEMBER_IN_SIZE=... -DEMBER_OUT_SIZE=...
 * -DECG_SCALE=<input scale>f -DECG_ZERO_POINT=<input zero point>. */
#include <stdint.h>
#include <stdio.h>
#include "ember_ecg_frontend.h"

typedef char ecg_model_input_size_check[EMBER_IN_SIZE == EMBER_ECG_LEN * EMBER_ECG_CHANNELS ? 1 : -1];

static int classify(const ember_ecg_beat *b) {
  static int8_t in[EMBER_IN_SIZE], out[EMBER_OUT_SIZE];
  ember_ecg_quantize(b, ECG_SCALE, ECG_ZERO_POINT, in);
  if (EMBER_INVOKE(in, out) != 0) return 2;
  if (fwrite(&b->r, 4, 1, stdout) != 1 || fwrite(out, 1, sizeof out, stdout) != sizeof out) return 3;
  return 0;
}

int main(void) {
  static ember_ecg_state st;
  static ember_ecg_beat beats[4];
  static int16_t buf[4096];
  size_t got;
  int rc = 0;
  ember_ecg_init(&st);
  while (!rc && (got = fread(buf, 2, 4096, stdin)) > 0) {
    for (size_t i = 0; i < got && !rc; ++i) {
      int n = ember_ecg_push(&st, buf[i], beats, 4);
      for (int k = 0; k < n && !rc; ++k) rc = classify(&beats[k]);
    }
  }
  if (!rc && ember_ecg_flush(&st, beats)) rc = classify(&beats[0]);
  return rc;
}
