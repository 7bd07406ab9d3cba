/* QEMU TCG plugin: counts every executed guest instruction (single vCPU) and prints the running
 * count each time the code at address `mark=0x...` is entered ("mark <count>" lines, then
 * "total <count>"). Exact and repeatable: instructions, not cycles.
 * Build: gcc -O2 -shared -fPIC -o libinsncount.so insncount.c
 * Run:   qemu-system-arm ... -plugin ./libinsncount.so,mark=0xADDR -d plugin */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "qemu-plugin-min.h"

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;
static uint64_t count, mark_addr = (uint64_t)-1;

static void on_mark(unsigned int vcpu, void *ud) {
  char buf[48];
  (void)vcpu; (void)ud;
  snprintf(buf, sizeof buf, "mark %" PRIu64 "\n", count);
  qemu_plugin_outs(buf);
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
  (void)id;
  if (qemu_plugin_tb_vaddr(tb) == mark_addr) /* registered first: sees the count before this block */
    qemu_plugin_register_vcpu_tb_exec_cb(tb, on_mark, QEMU_PLUGIN_CB_NO_REGS, NULL);
  qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &count, qemu_plugin_tb_n_insns(tb));
}

static void at_exit(qemu_plugin_id_t id, void *ud) {
  char buf[48];
  (void)id; (void)ud;
  snprintf(buf, sizeof buf, "total %" PRIu64 "\n", count);
  qemu_plugin_outs(buf);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
  int i;
  (void)info;
  for (i = 0; i < argc; i++)
    if (!strncmp(argv[i], "mark=", 5)) mark_addr = strtoull(argv[i] + 5, NULL, 0) & ~1ull;
  qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
  qemu_plugin_register_atexit_cb(id, at_exit, NULL);
  return 0;
}
