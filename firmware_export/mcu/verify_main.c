/* Runs the model on the compiled-in inputs of ember_verify_data.h, compares with the reference
 * outputs, prints a summary over semihosting and exits 0 only when every output matches.
 * Built with -include MODEL.h -DEMBER_INVOKE=... -DEMBER_IN_SIZE=... -DEMBER_OUT_SIZE=... */
#include <stdint.h>
#ifndef EMBER_IN_T /* element types of the input and output (int16_t for 16x8 models) */
#define EMBER_IN_T int8_t
#endif
#ifndef EMBER_OUT_T
#define EMBER_OUT_T int8_t
#endif
#include "ember_verify_data.h"

void ember_puts(const char *s);

static char *put_u32(char *p, uint32_t v, int base) {
  char tmp[12];
  int n = 0;
  do { tmp[n++] = "0123456789abcdef"[v % (uint32_t)base]; v /= (uint32_t)base; } while (v);
  while (n) *p++ = tmp[--n];
  return p;
}

int main(void) {
  static EMBER_OUT_T out[EMBER_OUT_SIZE];
  uint32_t checksum = 2166136261u, ok = 0;
  int32_t i, j;
  char line[96], *p = line;
  for (i = 0; i < EMBER_VERIFY_COUNT; ++i) {
    int same = EMBER_INVOKE(ember_verify_inputs[i], out) == 0;
    for (j = 0; j < EMBER_OUT_SIZE; ++j) {
      checksum = (checksum ^ (uint8_t)out[j]) * 16777619u;
      same = same && out[j] == ember_verify_expected[i][j];
    }
    ok += (uint32_t)same;
  }
  p = put_u32(p, ok, 10);
  *p++ = '/';
  p = put_u32(p, (uint32_t)EMBER_VERIFY_COUNT, 10);
  *p++ = ' ';
  p = put_u32(p, checksum, 16);
  *p++ = '\n';
  *p = 0;
  ember_puts("ember-verify: ");
  ember_puts(line);
  return ok == (uint32_t)EMBER_VERIFY_COUNT ? 0 : 1;
}
