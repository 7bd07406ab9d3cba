/* Host runner for an exported model with the KWS front end: reads clips of EMBER_KWS_SAMPLES int16
 * samples from stdin, writes the model's int8 output for each (features -> int8 input -> invoke).
 * Built with -include MODEL.h -DEMBER_INVOKE=... -DEMBER_IN_SIZE=... -DEMBER_OUT_SIZE=... */
#include <stdint.h>
#include <stdio.h>
#include "ember_kws_frontend.h"

typedef char kws_model_input_size_check[EMBER_IN_SIZE == EMBER_KWS_FRAMES * EMBER_KWS_CHANNELS ? 1 : -1];

int main(void) {
  static int16_t pcm[EMBER_KWS_SAMPLES];
  static uint8_t feat[EMBER_KWS_FRAMES * EMBER_KWS_CHANNELS];
  static int8_t in[EMBER_IN_SIZE], out[EMBER_OUT_SIZE];
  while (fread(pcm, sizeof pcm[0], EMBER_KWS_SAMPLES, stdin) == EMBER_KWS_SAMPLES) {
    if (ember_kws_features(pcm, EMBER_KWS_SAMPLES, feat) != EMBER_KWS_FRAMES) return 4;
    ember_kws_to_int8(feat, EMBER_IN_SIZE, in);
    if (EMBER_INVOKE(in, out) != 0) return 2;
    if (fwrite(out, 1, sizeof out, stdout) != sizeof out) return 3;
  }
  return 0;
}
