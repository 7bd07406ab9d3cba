/* Host test runner: reads int8 inputs from stdin back to back, writes the outputs to stdout.
 * Built with -include MODEL.h -DEMBER_INVOKE=... -DEMBER_IN_SIZE=... -DEMBER_OUT_SIZE=... */
#include <stdint.h>
#ifndef EMBER_IN_T /* element types of the input and output (int16_t for 16x8 models) */
#define EMBER_IN_T int8_t
#endif
#ifndef EMBER_OUT_T
#define EMBER_OUT_T int8_t
#endif
#include <stdio.h>

int main(void) {
  static EMBER_IN_T in[EMBER_IN_SIZE];
  static EMBER_OUT_T out[EMBER_OUT_SIZE];
  while (fread(in, 1, sizeof in, stdin) == sizeof in) {
    if (EMBER_INVOKE(in, out) != 0) return 2;
    if (fwrite(out, 1, sizeof out, stdout) != sizeof out) return 3;
  }
  return 0;
}
