/* Included into every source of an instruction-count build: declares the mark, and with
 * EMBER_PROFILE_LAYERS makes each layer end with one (EMBER_TRACE in the generated model). */
#ifndef EMBER_PROFILE_H
#define EMBER_PROFILE_H
void ember_mark(void);
#ifdef EMBER_PROFILE_LAYERS
#define EMBER_TRACE(op, data, size) ember_mark()
#endif
#endif
