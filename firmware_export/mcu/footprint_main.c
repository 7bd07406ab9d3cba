/* Smallest firmware that runs the model once: what arm-none-eabi-size measures for the report. */
#include <stdint.h>

int main(void) {
  static int8_t in[EMBER_IN_SIZE], out[EMBER_OUT_SIZE];
  return EMBER_INVOKE(in, out) == 0 ? 0 : 1;
}
