/* Host test runner for the KWS front end: reads clips of EMBER_KWS_RUNNER_SAMPLES int16 samples
 * (native byte order) from stdin back to back and writes their uint8 features to stdout. */
#include <stdint.h>
#include <stdio.h>
#include "ember_kws_frontend.h"

#define KWS_MAX_FRAMES (1 + (EMBER_KWS_RUNNER_SAMPLES - EMBER_KWS_WINDOW) / EMBER_KWS_STRIDE)

int main(void) {
  static int16_t pcm[EMBER_KWS_RUNNER_SAMPLES];
  static uint8_t feat[KWS_MAX_FRAMES * EMBER_KWS_CHANNELS];
  while (fread(pcm, sizeof pcm[0], EMBER_KWS_RUNNER_SAMPLES, stdin) == EMBER_KWS_RUNNER_SAMPLES) {
    const int frames = ember_kws_features(pcm, EMBER_KWS_RUNNER_SAMPLES, feat);
    const size_t n = (size_t)frames * EMBER_KWS_CHANNELS;
    if (fwrite(feat, 1, n, stdout) != n) return 3;
  }
  return 0;
}
