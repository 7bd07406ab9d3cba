/* Ember ECG front end: streaming integer QRS detection, beat windows and RR features.
 *
 * Sample-exact port of apps/health/frontend.py + features.py: feed int16 samples at 360 Hz in
 * MIT-BIH units (200 per mV) one at a time; a beat comes out (with its window, the running
 * average beat and 8 RR features) once the next beat is detected. No heap, no floating point
 * except in ember_ecg_quantize (the model input).
 */
#ifndef EMBER_ECG_FRONTEND_H
#define EMBER_ECG_FRONTEND_H

#include <stdint.h>

#define EMBER_ECG_RATE 360
#define EMBER_ECG_LEN 128            /* window samples (180 Hz) */
#define EMBER_ECG_NRR 8
#define EMBER_ECG_CHANNELS 3
#define EMBER_ECG_RING 256           /* hp, e, mwi history (power of two) */
#define EMBER_ECG_BL_RING 2048       /* baseline-free signal history (power of two) */
#define EMBER_ECG_PENDING 16
#define EMBER_ECG_QUEUE 8            /* detected beats waiting for their window or the next beat */

typedef struct {
    int32_t r;                       /* R-peak sample index */
    int16_t window[EMBER_ECG_LEN];
    int16_t templ[EMBER_ECG_LEN];
    int32_t rr[EMBER_ECG_NRR];       /* prev next local long (samples), prev/local next/local prev/long next/prev (Q8) */
} ember_ecg_beat;

typedef struct { int32_t i, peak, slope, r; } ember_ecg_cand;

typedef struct {
    ember_ecg_cand c;
    int32_t at;                      /* sample at which it was confirmed */
    int has_window;
    int16_t window[EMBER_ECG_LEN];
} ember_ecg_wait;

typedef struct {
    int32_t n;                                   /* samples consumed */
    /* filters */
    int16_t raw[256];  int32_t sum256;
    int32_t s1r[8];    int32_t s1;
    int32_t s2r[64];   int32_t s2, sum64;
    int32_t hp[EMBER_ECG_RING], e[EMBER_ECG_RING], mwi[EMBER_ECG_RING];
    int32_t sq[64];    int32_t msum;
    int16_t bl[EMBER_ECG_BL_RING];
    /* decisions */
    int32_t qrs[8], noise[8], rrb[8];
    int32_t last, last_slope, started;
    ember_ecg_cand pending[EMBER_ECG_PENDING]; int32_t npending;
    ember_ecg_cand learning[EMBER_ECG_PENDING]; int32_t nlearning;
    /* beats */
    ember_ecg_wait queue[EMBER_ECG_QUEUE]; int32_t nqueue;
    int32_t prev_r, have_prev;
    int32_t recent[10], nrecent;
    int32_t long_q4;
    int32_t templ_q4[EMBER_ECG_LEN], have_templ;
    int32_t dropped;                             /* beats dropped (queue full or window too old) */
} ember_ecg_state;

void ember_ecg_init(ember_ecg_state *s);
/* Push one sample; returns the number of beats written to out (0..max_out). */
int ember_ecg_push(ember_ecg_state *s, int16_t x, ember_ecg_beat *out, int max_out);
/* End of stream: the last beat (next RR = previous RR) if its window is complete. */
int ember_ecg_flush(ember_ecg_state *s, ember_ecg_beat *out);
/* Model input, channels-last [LEN][3] int8, quantized with the model's input scale/zero point. */
void ember_ecg_quantize(const ember_ecg_beat *b, float scale, int32_t zero_point, int8_t *out);

#endif
