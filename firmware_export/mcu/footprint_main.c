/* Smallest firmware that runs the model once: what arm-none-eabi-size measures for the report. */
#include <stdint.h>

int main(void) {
#if EMBER_IO_IN_ARENA /* input and output inside the model's arena */
  return EMBER_RUN() == 0 ? 0 : 1;
#else
  static int8_t in[EMBER_IN_SIZE], out[EMBER_OUT_SIZE];
  return EMBER_INVOKE(in, out) == 0 ? 0 : 1;
#endif
}
