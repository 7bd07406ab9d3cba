/* Cortex-M check of the KWS front end: computes the features of the clips in kws_verify_data.h,
 * compares them with Python's, prints "kws-verify: OK/N" over semihosting, exits 0 when all match. */
#include <stdint.h>
#include "ember_kws_frontend.h"
#include "kws_verify_data.h"

void ember_puts(const char *s);

int main(void) {
  static uint8_t feat[KWS_VERIFY_FRAMES * EMBER_KWS_CHANNELS];
  static char line[] = "kws-verify: 0/0\n";
  int i, j, ok = 0;
  for (i = 0; i < KWS_VERIFY_COUNT; ++i) {
    int same = ember_kws_features(kws_verify_pcm[i], KWS_VERIFY_SAMPLES, feat) == KWS_VERIFY_FRAMES;
    for (j = 0; j < KWS_VERIFY_FRAMES * EMBER_KWS_CHANNELS; ++j) same = same && feat[j] == kws_verify_expected[i][j];
    ok += same;
  }
  line[12] = (char)('0' + ok % 10);
  line[14] = (char)('0' + KWS_VERIFY_COUNT % 10);
  ember_puts(line);
  return ok == KWS_VERIFY_COUNT ? 0 : 1;
}
