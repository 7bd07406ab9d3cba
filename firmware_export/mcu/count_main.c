/* Instruction-count firmware: one inference on a deterministic input, bracketed by calls to
 * ember_mark() (the qemu plugin prints the instruction count each time it is entered). With
 * -include ember_profile.h every layer also ends with a mark. Prints the output as hex.
 * The input is TFLite Micro's benchmark input: 32-bit LCG from 12345, top byte of each state. */
#include <stdint.h>
#include "ember_profile.h"

void ember_puts(const char *s);

__attribute__((noinline, used)) void ember_mark(void) { __asm__ volatile(""); }

int main(void) {
#if EMBER_IO_IN_ARENA /* input and output in the model's arena: no buffers of our own */
  int8_t *in = EMBER_INPUT();
  const int8_t *out;
#else
  static int8_t in[EMBER_IN_SIZE], out[EMBER_OUT_SIZE];
#endif
  char line[66];
  uint32_t x = 12345u;
  int32_t j;
  int rc;
  for (j = 0; j < EMBER_IN_SIZE; ++j) {
    x = x * 1664525u + 1013904223u;
    in[j] = (int8_t)(x >> 24);
  }
  ember_mark(); /* m0, m1: the cost of a mark */
  ember_mark();
#if EMBER_IO_IN_ARENA
  rc = EMBER_RUN();
  ember_mark();
  out = EMBER_OUTPUT();
#else
  rc = EMBER_INVOKE(in, out);
  ember_mark();
#endif
  ember_puts("ember-output: ");
  for (j = 0; j < EMBER_OUT_SIZE; ++j) { /* 32 bytes a line: a small stack buffer, not a static one */
    line[2 * (j % 32)] = "0123456789abcdef"[(uint8_t)out[j] >> 4];
    line[2 * (j % 32) + 1] = "0123456789abcdef"[(uint8_t)out[j] & 15];
    line[2 * (j % 32) + 2] = 0;
    if (j % 32 == 31 || j + 1 == EMBER_OUT_SIZE) ember_puts(line);
  }
  ember_puts("\n");
  return rc;
}
