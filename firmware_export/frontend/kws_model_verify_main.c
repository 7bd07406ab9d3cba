/* Cortex-M check of the front end + model: each clip of kws_model_verify_data.h goes PCM -> features ->
 * int8 input -> invoke; the int8 outputs are compared with Python's. Prints "kws-model-verify: K/N"
 * over semihosting and exits 0 when all N match. Built with -include MODEL.h and the model defines. */
#include <stdint.h>
#include "ember_kws_frontend.h"
#include "kws_model_verify_data.h"

void ember_puts(const char *s);

int main(void) {
  static uint8_t feat[EMBER_KWS_FRAMES * EMBER_KWS_CHANNELS];
  static int8_t in[EMBER_IN_SIZE], out[EMBER_OUT_SIZE];
  static char line[] = "kws-model-verify: 0/0\n";
  int i, j, ok = 0;
  for (i = 0; i < KWS_VERIFY_COUNT; ++i) {
    int same = ember_kws_features(kws_verify_pcm[i], EMBER_KWS_SAMPLES, feat) == EMBER_KWS_FRAMES;
    ember_kws_to_int8(feat, EMBER_IN_SIZE, in);
    same = same && EMBER_INVOKE(in, out) == 0;
    for (j = 0; j < EMBER_OUT_SIZE; ++j) same = same && out[j] == kws_verify_expected[i][j];
    ok += same;
  }
  line[18] = (char)('0' + ok % 10);
  line[20] = (char)('0' + KWS_VERIFY_COUNT % 10);
  ember_puts(line);
  return ok == KWS_VERIFY_COUNT ? 0 : 1;
}
