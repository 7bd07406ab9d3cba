/* Host test runner: reads int8 inputs from stdin back to back, writes the outputs to stdout.
 * Built with -include MODEL.h -DEMBER_INVOKE=... -DEMBER_IN_SIZE=... -DEMBER_OUT_SIZE=... */
#include <stdint.h>
#include <stdio.h>

int main(void) {
  static int8_t in[EMBER_IN_SIZE], out[EMBER_OUT_SIZE];
  while (fread(in, 1, sizeof in, stdin) == sizeof in) {
    if (EMBER_INVOKE(in, out) != 0) return 2;
    if (fwrite(out, 1, sizeof out, stdout) != sizeof out) return 3;
  }
  return 0;
}
