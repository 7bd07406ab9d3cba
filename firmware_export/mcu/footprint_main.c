/* Smallest firmware that runs the model once: what arm-none-eabi-size measures for the report. */
#include <stdint.h>
#ifndef EMBER_IN_T /* element types of the input and output (int16_t for 16x8 models) */
#define EMBER_IN_T int8_t
#endif
#ifndef EMBER_OUT_T
#define EMBER_OUT_T int8_t
#endif

int main(void) {
#if EMBER_IO_IN_ARENA /* input and output inside the model's arena */
  return EMBER_RUN() == 0 ? 0 : 1;
#else
  static EMBER_IN_T in[EMBER_IN_SIZE];
  static EMBER_OUT_T out[EMBER_OUT_SIZE];
  return EMBER_INVOKE(in, out) == 0 ? 0 : 1;
#endif
}
