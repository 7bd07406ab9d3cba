/* Minimal Cortex-M startup for Ember firmware: vector table, .data/.bss init, FPU enable,
 * semihosting (SYS_WRITE0 to print, SYS_EXIT_EXTENDED to exit with main's status). No libc. */
#include <stddef.h>
#include <stdint.h>

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
int main(void);
void ember_puts(const char *s);
void ember_exit(int code);
void Reset_Handler(void);
void Default_Handler(void);

__attribute__((section(".isr_vector"), used)) void (*const ember_vectors[16])(void) = {
    (void (*)(void))(uintptr_t)&_estack, Reset_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, 0, 0, 0, 0,
    Default_Handler, Default_Handler, 0, Default_Handler, Default_Handler};

static int semihost(int op, void *arg) {
  register int r0 __asm__("r0") = op;
  register void *r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

void ember_puts(const char *s) { semihost(0x04, (void *)(uintptr_t)s); }

void ember_exit(int code) {
  uint32_t block[2];
  block[0] = 0x20026u; /* ADP_Stopped_ApplicationExit */
  block[1] = (uint32_t)code;
  semihost(0x20, block); /* SYS_EXIT_EXTENDED */
  for (;;) {}
}

void Reset_Handler(void) {
  uint32_t *src = &_sidata, *dst = &_sdata;
  while (dst < &_edata) *dst++ = *src++;
  for (dst = &_sbss; dst < &_ebss;) *dst++ = 0;
#if defined(__ARM_FP)
  *(volatile uint32_t *)0xE000ED88u |= (0xFu << 20); /* CPACR: full access to CP10/CP11 */
  __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
  ember_exit(main());
}

void Default_Handler(void) {
  ember_puts("ember: fault\n");
  ember_exit(3);
}

/* The compiler may emit calls to these for struct copies and zeroing loops. */
void *memcpy(void *d, const void *s, size_t n) {
  uint8_t *dp = (uint8_t *)d;
  const uint8_t *sp = (const uint8_t *)s;
  while (n--) *dp++ = *sp++;
  return d;
}

void *memset(void *d, int v, size_t n) {
  uint8_t *dp = (uint8_t *)d;
  while (n--) *dp++ = (uint8_t)v;
  return d;
}
