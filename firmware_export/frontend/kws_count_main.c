/* Instruction-count firmware for the bench: runs ember_kws_frame KWS_REPEAT times on the first
 * window of the first clip in kws_verify_data.h (run with 1 and N repeats under qemu's exec trace). */
#include <stdint.h>
#include "ember_kws_frontend.h"
#include "kws_verify_data.h"

int main(void) {
  static uint8_t feat[EMBER_KWS_CHANNELS];
  int i, sum = 0;
  for (i = 0; i < KWS_REPEAT; ++i) {
    ember_kws_frame(kws_verify_pcm[0], feat);
    sum += feat[0];
  }
  return sum == 0 ? 1 : 0;
}
