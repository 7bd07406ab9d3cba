/* Ember ECG front end (see ember_ecg_frontend.h); mirrors apps/health/frontend.py and features.py. */
#include "ember_ecg_frontend.h"

#include <stddef.h>
#include <string.h>

#define W 72
#define LEARN (2 * EMBER_ECG_RATE)
#define HP_DELAY 39
#define BL_DELAY 128
#define T_WAVE 130
#define SEARCH 60
#define TH16 3
#define PRE 90
#define SPAN (2 * EMBER_ECG_LEN)
#define LATE 1024
#define TEMPLATE_MIN_RATIO 230   /* Q8: prev RR >= 0.9 x local mean updates the template */
#define LOCAL 10
#define RMASK (EMBER_ECG_RING - 1)
#define BMASK (EMBER_ECG_BL_RING - 1)

void ember_ecg_init(ember_ecg_state *s) {
    memset(s, 0, sizeof(*s));
    s->last = -1;
    s->long_q4 = -1;
    for (int k = 0; k < 8; k++) s->rrb[k] = EMBER_ECG_RATE;
}

static void history(ember_ecg_state *s, int32_t x) {   /* the stream held its first value forever */
    for (int k = 0; k < 256; k++) s->raw[k] = (int16_t)x;
    s->sum256 = 256 * x;
    s->s1 = 8 * x;
    for (int k = 0; k < 8; k++) s->s1r[k] = 8 * x;
    s->s2 = 64 * x;
    for (int k = 0; k < 64; k++) s->s2r[k] = 64 * x;
    s->sum64 = 64 * 64 * x;
}

static int64_t threshold(const ember_ecg_state *s) {
    int64_t q = 0, nz = 0;
    for (int k = 0; k < 8; k++) { q += s->qrs[k]; nz += s->noise[k]; }
    q >>= 3; nz >>= 3;
    return nz + ((q - nz) >> 4) * TH16;
}

/* memmove(dst, dst + elem, count * elem) for the queues (the firmware has memcpy/memset only) */
static void shift_down(void *base, size_t elem, size_t count) {
    unsigned char *p = (unsigned char *)base;
    for (size_t k = 0; k < count * elem; k++) p[k] = p[k + elem];
}

static void push8(int32_t *buf, int32_t v) {
    shift_down(buf, sizeof(int32_t), 7);
    buf[7] = v;
}

static void enqueue(ember_ecg_state *s, const ember_ecg_cand *c, int32_t at) {
    if (c->r - PRE + BL_DELAY < at - LATE || s->nqueue == EMBER_ECG_QUEUE) { s->dropped++; return; }
    ember_ecg_wait *w = &s->queue[s->nqueue++];
    w->c = *c;
    w->at = at;
    w->has_window = 0;
}

static void accept(ember_ecg_state *s, const ember_ecg_cand *c, int32_t at) {
    push8(s->qrs, c->peak);
    if (s->last >= 0) {
        int32_t rr = c->i - s->last;
        if (rr < W) rr = W;
        if (rr > 5 * EMBER_ECG_RATE) rr = 5 * EMBER_ECG_RATE;
        push8(s->rrb, rr);
    }
    s->last = c->i;
    s->last_slope = c->slope;
    int32_t k = 0;
    for (int32_t j = 0; j < s->npending; j++)
        if (s->pending[j].i > c->i) s->pending[k++] = s->pending[j];
    s->npending = k;
    enqueue(s, c, at);
}

static void judge(ember_ecg_state *s, const ember_ecg_cand *c, int32_t at) {
    int64_t rr_mean = 0;
    for (int k = 0; k < 8; k++) rr_mean += s->rrb[k];
    rr_mean >>= 3;
    if (s->last >= 0 && (int64_t)(c->i - s->last) * 2 > rr_mean * 3 && s->npending > 0) {
        int32_t j = 0;
        for (int32_t k = 1; k < s->npending; k++)
            if (s->pending[k].peak > s->pending[j].peak) j = k;
        if (s->pending[j].peak > (threshold(s) >> 1)) {
            ember_ecg_cand best = s->pending[j];
            accept(s, &best, at);
        }
    }
    int is_t = s->last >= 0 && c->i - s->last < T_WAVE && c->slope < (s->last_slope >> 1);
    if (c->peak > threshold(s) && !is_t) {
        accept(s, c, at);
    } else {
        push8(s->noise, c->peak);
        if (s->npending == EMBER_ECG_PENDING) {
            shift_down(s->pending, sizeof(ember_ecg_cand), EMBER_ECG_PENDING - 1);
            s->npending--;
        }
        s->pending[s->npending++] = *c;
    }
}

static void decide(ember_ecg_state *s, int32_t i, int32_t peak, int32_t at) {
    ember_ecg_cand c = {i, peak, 0, 0};
    int32_t best = -1, arg = 0;
    for (int32_t j = i - SEARCH; j <= i; j++) {
        int32_t e = s->e[j & RMASK], h = s->hp[j & RMASK];
        if (e < 0) e = -e;
        if (h < 0) h = -h;
        if (e > c.slope) c.slope = e;
        if (h > best) { best = h; arg = j - (i - SEARCH); }
    }
    c.r = i - SEARCH + arg - HP_DELAY;
    if (!s->started) {
        if (i < LEARN) {
            if (s->nlearning < EMBER_ECG_PENDING) s->learning[s->nlearning++] = c;
            return;
        }
        int32_t top = peak;
        for (int32_t k = 0; k < s->nlearning; k++)
            if (s->learning[k].peak > top) top = s->learning[k].peak;
        for (int k = 0; k < 8; k++) s->qrs[k] = top >> 1;
        s->started = 1;
        for (int32_t k = 0; k < s->nlearning; k++) judge(s, &s->learning[k], at);
        s->nlearning = 0;
    }
    judge(s, &c, at);
}

static void features(ember_ecg_state *s, int32_t prev, int32_t nxt, int32_t *rr) {
    if (s->nrecent == LOCAL) { shift_down(s->recent, sizeof(int32_t), LOCAL - 1); s->nrecent--; }
    s->recent[s->nrecent++] = prev;
    int32_t local = 0;
    for (int32_t k = 0; k < s->nrecent; k++) local += s->recent[k];
    local /= s->nrecent;
    if (s->long_q4 < 0) s->long_q4 = prev << 4;
    else s->long_q4 += ((prev << 4) - s->long_q4) >> 6;
    int32_t lng = s->long_q4 >> 4;
    if (lng < 1) lng = 1;
    if (local < 1) local = 1;
    if (prev < 1) prev = 1;
    if (nxt < 1) nxt = 1;
    rr[0] = prev; rr[1] = nxt; rr[2] = local; rr[3] = lng;
    rr[4] = (prev << 8) / local; rr[5] = (nxt << 8) / local;
    rr[6] = (prev << 8) / lng; rr[7] = (nxt << 8) / prev;
}

static void emit(ember_ecg_state *s, const ember_ecg_wait *w, int32_t nxt, ember_ecg_beat *out) {
    int32_t r = w->c.r;
    int32_t prev = s->have_prev ? r - s->prev_r : nxt;
    s->prev_r = r;
    s->have_prev = 1;
    out->r = r;
    memcpy(out->window, w->window, sizeof(out->window));
    features(s, prev, nxt, out->rr);
    if (!s->have_templ) {
        for (int k = 0; k < EMBER_ECG_LEN; k++) s->templ_q4[k] = (int32_t)w->window[k] << 4;
        s->have_templ = 1;
    }
    int update = out->rr[4] >= TEMPLATE_MIN_RATIO;   /* premature beats stay out of the usual beat */
    for (int k = 0; k < EMBER_ECG_LEN; k++) {
        out->templ[k] = (int16_t)(s->templ_q4[k] >> 4);
        if (update) s->templ_q4[k] += (((int32_t)w->window[k] << 4) - s->templ_q4[k]) >> 4;
    }
}

static void take_windows(ember_ecg_state *s) {
    for (int32_t k = 0; k < s->nqueue; k++) {
        ember_ecg_wait *w = &s->queue[k];
        int32_t start = w->c.r - PRE + BL_DELAY;
        if (w->has_window || start + SPAN > s->n) continue;
        for (int j = 0; j < EMBER_ECG_LEN; j++) {
            int32_t a = s->bl[(start + 2 * j) & BMASK], b = s->bl[(start + 2 * j + 1) & BMASK];
            w->window[j] = (int16_t)((a + b) >> 1);
        }
        w->has_window = 1;
    }
}

static void pop(ember_ecg_state *s) {
    shift_down(s->queue, sizeof(ember_ecg_wait), (size_t)(s->nqueue - 1));
    s->nqueue--;
}

int ember_ecg_push(ember_ecg_state *s, int16_t x16, ember_ecg_beat *out, int max_out) {
    int32_t n = s->n, x = x16;
    if (n == 0) history(s, x);
    int32_t old8 = s->raw[(n - 8) & 255], old256 = s->raw[n & 255];
    s->s1 += x - old8;
    s->sum256 += x - old256;
    s->raw[n & 255] = (int16_t)x;
    s->bl[n & BMASK] = (int16_t)(s->raw[(n - 128) & 255] - (s->sum256 >> 8));
    s->s2 += s->s1 - s->s1r[n & 7];
    s->s1r[n & 7] = s->s1;
    s->sum64 += s->s2 - s->s2r[n & 63];
    int32_t hp = s->s2r[(n - 32) & 63] - (s->sum64 >> 6);
    s->s2r[n & 63] = s->s2;
    s->hp[n & RMASK] = hp;
    int32_t d = 2 * hp + s->hp[(n - 1) & RMASK] - s->hp[(n - 3) & RMASK] - 2 * s->hp[(n - 4) & RMASK];
    int32_t e = d >> 5;
    if (e > 32767) e = 32767;
    if (e < -32767) e = -32767;
    s->e[n & RMASK] = e;
    int32_t sq = (e * e) >> 6;
    s->msum += sq - s->sq[(n - 54) & 63];
    s->sq[n & 63] = sq;
    s->mwi[n & RMASK] = s->msum;
    s->n = n + 1;

    int32_t i = n - W;
    if (i >= 0) {
        int32_t m = s->mwi[i & RMASK], ok = m > 0;
        for (int32_t j = i - W; ok && j < i; j++) ok = s->mwi[j & RMASK] < m;
        for (int32_t j = i + 1; ok && j <= i + W; j++) ok = s->mwi[j & RMASK] <= m;
        if (ok) decide(s, i, m, i + W);
    }
    take_windows(s);
    int got = 0;
    while (s->nqueue >= 2 && s->queue[0].has_window && got < max_out) {
        emit(s, &s->queue[0], s->queue[1].c.r - s->queue[0].c.r, &out[got++]);
        pop(s);
    }
    return got;
}

int ember_ecg_flush(ember_ecg_state *s, ember_ecg_beat *out) {
    int got = 0;
    if (s->nqueue > 0 && s->queue[0].has_window) {
        int32_t prev = s->have_prev ? s->queue[0].c.r - s->prev_r : EMBER_ECG_RATE;
        emit(s, &s->queue[0], prev, out);
        got = 1;
    }
    s->nqueue = 0;
    return got;
}

static int32_t round_half_even(float y) {   /* numpy's np.round, without libm */
    if (y > 1e6f) y = 1e6f;
    if (y < -1e6f) y = -1e6f;
    int32_t t = (int32_t)y;
    float f = y - (float)t;
    if (f > 0.5f || (f == 0.5f && (t & 1))) t++;
    else if (f < -0.5f || (f == -0.5f && (t & 1))) t--;
    return t;
}

void ember_ecg_quantize(const ember_ecg_beat *b, float scale, int32_t zero_point, int8_t *out) {
    for (int t = 0; t < EMBER_ECG_LEN; t++) {
        int f = t / (EMBER_ECG_LEN / EMBER_ECG_NRR);
        float v[3] = {(float)b->window[t] / 200.0f, (float)b->templ[t] / 200.0f,
                      (float)b->rr[f] * (f < 4 ? (float)(1.0 / 360.0) : (float)(1.0 / 256.0))};
        for (int c = 0; c < 3; c++) {
            int32_t q = round_half_even(v[c] / scale) + zero_point;
            out[t * 3 + c] = (int8_t)(q < -128 ? -128 : q > 127 ? 127 : q);
        }
    }
}
