/* Instruction-count firmware: one inference on a deterministic input, bracketed by calls to
 * ember_mark() (the qemu plugin prints the instruction count each time it is entered). With
 * -include ember_profile.h every layer also ends with a mark. Prints the output as hex.
 * The input is TFLite Micro's benchmark input: 32-bit LCG from 12345, top byte of each state. */
#include <stdint.h>
#include "ember_profile.h"

void ember_puts(const char *s);

__attribute__((noinline, used)) void ember_mark(void) { __asm__ volatile(""); }

int main(void) {
  static int8_t in[EMBER_IN_SIZE], out[EMBER_OUT_SIZE];
  static char line[2 * EMBER_OUT_SIZE + 2];
  uint32_t x = 12345u;
  int32_t j;
  int rc;
  for (j = 0; j < EMBER_IN_SIZE; ++j) {
    x = x * 1664525u + 1013904223u;
    in[j] = (int8_t)(x >> 24);
  }
  ember_mark(); /* m0, m1: the cost of a mark */
  ember_mark();
  rc = EMBER_INVOKE(in, out);
  ember_mark();
  for (j = 0; j < EMBER_OUT_SIZE; ++j) {
    line[2 * j] = "0123456789abcdef"[(uint8_t)out[j] >> 4];
    line[2 * j + 1] = "0123456789abcdef"[(uint8_t)out[j] & 15];
  }
  line[2 * EMBER_OUT_SIZE] = '\n';
  line[2 * EMBER_OUT_SIZE + 1] = 0;
  ember_puts("ember-output: ");
  ember_puts(line);
  return rc;
}
