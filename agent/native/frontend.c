/*
 * keywire.agent._cfrontend: the microfrontend's per-frame integer arithmetic in C.
 *
 * The specification is keywire's own numpy implementation, agent/frontend/: every step
 * below mirrors a function there (named in the comments) operation for operation, so the
 * two give bit-identical uint16 features. All tables (Q12 window, FFT input order and
 * twiddles, split twiddles, filterbank weights, PCAN gain LUT, log LUT) are computed once by
 * Python's `micro_tables(settings)` and handed over at construction; C only does the per-sample
 * and per-frame arithmetic and keeps the streaming state (DC notch, leftover samples, noise
 * estimate).
 *
 * Portable C99 (no intrinsics). Assumes what every supported compiler does: `>>` on a
 * negative signed integer is an arithmetic (floor) shift, and int64_t exists.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define WINDOW_BITS 12
#define NR_BITS 14            /* noise reduction fixed point */
#define PCAN_SNR_BITS 12
#define PCAN_OUTPUT_BITS 6
#define LOG_SCALE_LOG2 16
#define LOG_SEGMENTS_LOG2 7
#define LOG_COEFF 45426       /* ln(2) in Q16 */
#define GAIN_LUT_LEN 125
#define LOG_LUT_LEN 130
#define MAX_STAGES 32

/* int16 store of an integer (two's complement wrap). The conversion of an out-of-range value
 * to int16_t is implementation-defined in C99; every compiler we build with (GCC, Clang)
 * wraps modulo 2^16, and the typedef below refuses to compile where that is not so. */
typedef char int16_store_wraps[((int16_t)40000 == -25536 && (int16_t)-40000 == 25536) ? 1 : -1];

static inline int32_t wrap16(int32_t v)
{
    return (int16_t)v;
}

/* Number of bits needed for v (0 for 0): MostSignificantBit32 / numpy's frexp exponent. */
static inline int bit_length(uint64_t v)
{
#if defined(__GNUC__) || defined(__clang__)
    return v ? 64 - __builtin_clzll(v) : 0;
#else
    int n = 0;
    while (v) { n++; v >>= 1; }
    return n;
#endif
}

/* floor(v * factor / 2^15 + 0.5): the numpy code's _round_q15_inplace with factor/2^15. */
static inline int32_t round_q15(int64_t v)
{
    return (int32_t)((v + (1 << 14)) >> 15);
}

typedef struct {
    PyObject_HEAD
    /* sizes */
    int size, step, fft_size, ncfft, nch, nbins;   /* nbins = end - start */
    /* tables */
    int32_t *window;          /* [size] Q12 Hann */
    int32_t *perm;            /* [ncfft] input pair of each FFT position */
    int nstages;
    int stage_p[MAX_STAGES], stage_m[MAX_STAGES], stage_fstride[MAX_STAGES];
    int32_t *stage_tw[MAX_STAGES];  /* per stage: [p][m] twiddles, (re, im) interleaved */
    int32_t *twiddles;        /* storage of all stage twiddles */
    int32_t *split_k;         /* [nbins] split-loop k writing each filterbank bin */
    int32_t *split_first;     /* [nbins] 1: freqdata[k] write, 0: freqdata[ncfft-k] */
    int32_t *split_tw;        /* [nbins] split twiddle (re, im) */
    int32_t *weights, *unweights;  /* [nbins] Q12 */
    int32_t *bin_range;       /* [nbins] which of the nch+1 channel ranges a bin is in */
    int nr_enable, smoothing_bits, min_signal_remaining;
    int32_t *smoothing;       /* [nch] even/odd smoothing, Q14 */
    int pcan_enable, snr_shift;
    int32_t gain_lut[GAIN_LUT_LEN];
    int log_enable, log_shift, correction_bits;
    int32_t log_lut[LOG_LUT_LEN];
    int dc_enable, dc_coef;
    /* streaming state */
    int16_t *buf;             /* [size] samples after the DC notch not yet used up */
    int nbuf;
    int32_t dc_in, dc_out;
    int64_t *estimate;        /* [nch] noise estimate */
    /* scratch */
    int32_t *frame;           /* [size] windowed samples */
    int32_t *z;               /* [2 * ncfft] complex FFT work (re, im) */
    int64_t *wsum, *usum;     /* [nch + 1] filterbank range sums */
    int64_t *sig;             /* [nch] */
    int busy;                 /* a call runs without the GIL: others must not touch the state */
} FE;

/* ---------------------------------------------------------------- the arithmetic */

/* C_FIXDIV(x, p) for p = 4 and 2: x * (32767 / p), rounded back to Q15. Inputs are int16
 * values (or at most 4 * 2^14 before the first store), so int32 never overflows. */
#define FIXDIV4(x) (((x) * 8191 + (1 << 14)) >> 15)
#define FIXDIV2(x) (((x) * 16383 + (1 << 14)) >> 15)

/* x * t rounded to Q15 (C_MUL): |x| <= 2^14 after C_FIXDIV, |t| <= 32767: fits int32. */
#define ROT(ar, ai, tr, ti) do {                                   \
        const int32_t r_ = (ar) * (tr) - (ai) * (ti);              \
        const int32_t i_ = (ar) * (ti) + (ai) * (tr);              \
        (ar) = (r_ + (1 << 14)) >> 15;                             \
        (ai) = (i_ + (1 << 14)) >> 15;                             \
    } while (0)

/* One radix-4 stage of _complex_fft_q15 over z ([fstride][4][m] complex). With m == 1 every
 * twiddle is 1 and the numpy code neither rotates nor stores as int16 (nothing can overflow);
 * `rotate` is a constant at each call so the compiler drops the unused branches. */
static inline void radix4_stage(int32_t *z, int m, int fstride, const int32_t *tw, const int rotate)
{
    for (int f = 0; f < fstride; f++) {
        int32_t *blk = z + 8 * f * m;
        for (int k = 0; k < m; k++) {
            int32_t *v0 = blk + 2 * k, *v1 = v0 + 2 * m, *v2 = v1 + 2 * m, *v3 = v2 + 2 * m;
            int32_t a0r = FIXDIV4(v0[0]), a0i = FIXDIV4(v0[1]);
            int32_t a1r = FIXDIV4(v1[0]), a1i = FIXDIV4(v1[1]);
            int32_t a2r = FIXDIV4(v2[0]), a2i = FIXDIV4(v2[1]);
            int32_t a3r = FIXDIV4(v3[0]), a3i = FIXDIV4(v3[1]);
            if (rotate) {
                const int32_t *t1 = tw + 2 * (m + k), *t2 = t1 + 2 * m, *t3 = t2 + 2 * m;
                ROT(a1r, a1i, t1[0], t1[1]);
                ROT(a2r, a2i, t2[0], t2[1]);
                ROT(a3r, a3i, t3[0], t3[1]);
            }
            const int32_t s5r = a0r - a2r, s5i = a0i - a2i;
            const int32_t f0r = a0r + a2r, f0i = a0i + a2i;
            const int32_t s3r = a1r + a3r, s3i = a1i + a3i;
            const int32_t s4r = a1r - a3r, s4i = a1i - a3i;
            if (rotate) {
                v0[0] = wrap16(f0r + s3r);  v0[1] = wrap16(f0i + s3i);
                v2[0] = wrap16(f0r - s3r);  v2[1] = wrap16(f0i - s3i);
                v1[0] = wrap16(s5r + s4i);  v1[1] = wrap16(s5i - s4r);
                v3[0] = wrap16(s5r - s4i);  v3[1] = wrap16(s5i + s4r);
            } else {
                v0[0] = f0r + s3r;  v0[1] = f0i + s3i;
                v2[0] = f0r - s3r;  v2[1] = f0i - s3i;
                v1[0] = s5r + s4i;  v1[1] = s5i - s4r;
                v3[0] = s5r - s4i;  v3[1] = s5i + s4r;
            }
        }
    }
}

/* One radix-2 stage (same conventions). */
static inline void radix2_stage(int32_t *z, int m, int fstride, const int32_t *tw, const int rotate)
{
    for (int f = 0; f < fstride; f++) {
        int32_t *blk = z + 4 * f * m;
        for (int k = 0; k < m; k++) {
            int32_t *v0 = blk + 2 * k, *v1 = v0 + 2 * m;
            const int32_t a0r = FIXDIV2(v0[0]), a0i = FIXDIV2(v0[1]);
            int32_t a1r = FIXDIV2(v1[0]), a1i = FIXDIV2(v1[1]);
            if (rotate) {
                const int32_t *t1 = tw + 2 * (m + k);
                ROT(a1r, a1i, t1[0], t1[1]);
                v0[0] = wrap16(a0r + a1r);  v0[1] = wrap16(a0i + a1i);
                v1[0] = wrap16(a0r - a1r);  v1[1] = wrap16(a0i - a1i);
            } else {
                v0[0] = a0r + a1r;  v0[1] = a0i + a1i;
                v1[0] = a0r - a1r;  v1[1] = a0i - a1i;
            }
        }
    }
}

/* fft._complex_fft_q15: the 16-bit fixed-point complex FFT over s->z, stages deepest first. */
static void complex_fft(FE *s)
{
    for (int st = 0; st < s->nstages; st++) {
        const int p = s->stage_p[st], m = s->stage_m[st], fstride = s->stage_fstride[st];
        if (p == 4) {
            if (m > 1) radix4_stage(s->z, m, fstride, s->stage_tw[st], 1);
            else radix4_stage(s->z, m, fstride, s->stage_tw[st], 0);
        } else {
            if (m > 1) radix2_stage(s->z, m, fstride, s->stage_tw[st], 1);
            else radix2_stage(s->z, m, fstride, s->stage_tw[st], 0);
        }
    }
}

/* microfrontend._spectrum_block for one frame: window, block scaling, real FFT, energy, filterbank,
 * rounded sqrt, shift undone. Leaves the channel values in s->sig. */
static void windowed_spectrum(FE *s, const int16_t *x)
{
    int32_t max_abs = 0;
    for (int i = 0; i < s->size; i++) {
        const int32_t w = ((int32_t)x[i] * s->window[i]) >> WINDOW_BITS;
        const int32_t a = w < 0 ? -w : w;
        s->frame[i] = w;
        if (a <= 32767 && a > max_abs)      /* int16 abs(-32768) wraps negative */
            max_abs = a;
    }
    const int shift = 15 - bit_length((uint64_t)max_abs);

    /* Real input x[0..fft_size) as ncfft complex pairs, in the FFT's input order. */
    for (int i = 0; i < s->ncfft; i++) {
        const int j = 2 * s->perm[i];
        s->z[2 * i] = j < s->size ? wrap16((int32_t)((int64_t)s->frame[j] * ((int64_t)1 << shift))) : 0;
        s->z[2 * i + 1] = j + 1 < s->size ? wrap16((int32_t)((int64_t)s->frame[j + 1] * ((int64_t)1 << shift))) : 0;
    }
    complex_fft(s);

    /* fft.spectrum_energy: the real-FFT split for the filterbank's bins, then |X|^2,
     * accumulated straight into the filterbank's range sums (FilterbankAccumulateChannels). */
    memset(s->wsum, 0, sizeof(int64_t) * (s->nch + 1));
    memset(s->usum, 0, sizeof(int64_t) * (s->nch + 1));
    const int32_t *z = s->z;
    for (int b = 0; b < s->nbins; b++) {
        const int k = s->split_k[b], nk = s->ncfft - k;
        int32_t pkr = z[2 * k], pki = z[2 * k + 1];
        int32_t nkr = wrap16(z[2 * nk]), nki = wrap16(-z[2 * nk + 1]);   /* conj, int16 store */
        pkr = round_q15((int64_t)pkr * 16383);  pki = round_q15((int64_t)pki * 16383);  /* C_FIXDIV(., 2) */
        nkr = round_q15((int64_t)nkr * 16383);  nki = round_q15((int64_t)nki * 16383);
        const int32_t f1r = wrap16(pkr + nkr), f1i = wrap16(pki + nki);
        const int32_t f2r = wrap16(pkr - nkr), f2i = wrap16(pki - nki);
        const int32_t tr = s->split_tw[2 * b], ti = s->split_tw[2 * b + 1];
        const int32_t rr = wrap16(round_q15((int64_t)f2r * tr - (int64_t)f2i * ti));
        const int32_t ri = wrap16(round_q15((int64_t)f2r * ti + (int64_t)f2i * tr));
        int32_t outr, outi;
        if (s->split_first[b]) {
            outr = (f1r + rr) >> 1;
            outi = (f1i + ri) >> 1;
        } else {                     /* conj(f1k - f2k) */
            outr = (f1r - rr) >> 1;
            outi = (ri - f1i) >> 1;
        }
        const int64_t energy = (int64_t)outr * outr + (int64_t)outi * outi;
        const int r = s->bin_range[b];
        s->wsum[r] += energy * s->weights[b];
        s->usum[r] += energy * s->unweights[b];
    }

    /* channel c = weights of range c+1 + unweights of range c; filterbank.round_sqrt; shift undone */
    for (int c = 0; c < s->nch; c++) {
        const uint64_t n = (uint64_t)(s->wsum[c + 1] + s->usum[c]);
        uint64_t r = (uint64_t)floor(sqrt((double)n));
        if (r * r > n)
            r -= 1;
        if ((r + 1) * (r + 1) <= n)
            r += 1;
        int inc = (n - r * r) > r;
        if (r == 65535 && n < ((uint64_t)1 << 32))   /* Sqrt32 never rounds 0xFFFF up */
            inc = 0;
        s->sig[c] = (int64_t)((r + (uint64_t)inc) >> shift);
    }
}

/* noise._wide_dynamic: PCAN's piecewise-quadratic gain of the noise estimate, as uint32. */
static uint32_t wide_dynamic(const FE *s, int64_t x)
{
    const int32_t *lut = s->gain_lut;
    int64_t result;
    if (x <= 2) {
        result = lut[x];
    } else {
        const int interval = bit_length((uint64_t)x);
        const int base = 4 * interval - 6;
        const int64_t frac = (interval < 11 ? x << (11 - interval) : x >> (interval - 11)) & 0x3FF;
        const int64_t l0 = lut[base];
        const int64_t l1 = lut[base + 1 < GAIN_LUT_LEN ? base + 1 : GAIN_LUT_LEN - 1];
        const int64_t l2 = lut[base + 2 < GAIN_LUT_LEN ? base + 2 : GAIN_LUT_LEN - 1];
        result = (l2 * frac) >> 5;
        result += l1 * 32;
        result *= frac;
        result = (result + (1 << 14)) >> 15;
        result += l0;
        result = wrap16((int32_t)result);   /* |result| < 2^17 here */
    }
    return (uint32_t)(result & 0xFFFFFFFF);
}

/* log.log_scale for one value: fixed-point natural log scaled by 2^log_shift, saturated. */
static uint16_t log_scale(const FE *s, int64_t x)
{
    if (!s->log_enable)
        return (uint16_t)(x < 0xFFFF ? x : 0xFFFF);
    int64_t v;
    if (s->correction_bits < 0)
        v = x >> -s->correction_bits;
    else
        v = (x << s->correction_bits) & 0xFFFFFFFF;
    if (v <= 1)
        return 0;
    const int e = bit_length((uint64_t)v);           /* v = m * 2^e, m in [0.5, 1) */
    const int64_t mant = v - ((int64_t)1 << (e - 1));
    const int64_t frac = e <= 17 ? mant << (17 - e) : mant >> (e - 17);   /* 0 .. 65535 */
    const int seg = (int)(frac >> (LOG_SCALE_LOG2 - LOG_SEGMENTS_LOG2));
    const int64_t c0 = s->log_lut[seg], step = s->log_lut[seg + 1] - c0;
    const int64_t rel = (step * (frac & ((1 << (LOG_SCALE_LOG2 - LOG_SEGMENTS_LOG2)) - 1))) >> LOG_SCALE_LOG2;
    const int64_t log2 = ((int64_t)(e - 1) << LOG_SCALE_LOG2) + frac + c0 + rel;
    const int64_t rnd = (int64_t)1 << (LOG_SCALE_LOG2 - 1);
    const int64_t loge = (LOG_COEFF * log2 + rnd) >> LOG_SCALE_LOG2;
    int64_t scaled = loge << s->log_shift;
    if (s->log_shift > 10)
        scaled &= 0xFFFFFFFF;
    scaled = (scaled + rnd) >> LOG_SCALE_LOG2;
    return (uint16_t)(scaled < 0xFFFF ? scaled : 0xFFFF);
}

/* noise.reduce_noise then log.log_scale for one frame: noise reduction, PCAN, log of s->sig into out[nch]. */
static void nr_pcan_log(FE *s, uint16_t *out)
{
    for (int c = 0; c < s->nch; c++) {
        int64_t sig = s->sig[c];
        if (s->nr_enable) {
            const int sb = s->smoothing_bits;
            const int64_t up = (sig << sb) & 0xFFFFFFFF;
            const int64_t sm = s->smoothing[c];
            const int64_t est = (up * sm + s->estimate[c] * ((1 << NR_BITS) - sm)) >> NR_BITS;
            s->estimate[c] = est;
            const int64_t floor_ = (sig * s->min_signal_remaining) >> NR_BITS;
            const int64_t sub = (up - (est < up ? est : up)) >> sb;
            sig = sub > floor_ ? sub : floor_;
            if (s->pcan_enable) {
                const uint64_t gain = wide_dynamic(s, est);
                const int64_t snr = (int64_t)((((uint64_t)sig * gain) >> s->snr_shift) & 0xFFFFFFFF);
                if (snr < (2 << PCAN_SNR_BITS))
                    sig = ((snr * snr) >> (2 + 2 * PCAN_SNR_BITS - PCAN_OUTPUT_BITS)) & 0xFFFFFFFF;
                else
                    sig = ((snr >> (PCAN_SNR_BITS - PCAN_OUTPUT_BITS)) - (1 << PCAN_OUTPUT_BITS)) & 0xFFFFFFFF;
            }
        }
        out[c] = log_scale(s, sig);
    }
}

static void reset_state(FE *s)
{
    s->nbuf = 0;
    s->dc_in = 0;
    s->dc_out = 0;
    memset(s->estimate, 0, sizeof(int64_t) * s->nch);
}

static Py_ssize_t frames_for(const FE *s, Py_ssize_t n)
{
    const Py_ssize_t total = s->nbuf + n;
    return total < s->size ? 0 : (total - s->size) / s->step + 1;
}

/* Frontend.process on a stream chunk: DC notch per sample (framing.dc_notch), frames as soon as
 * `size` samples are buffered, then drop `step` of them. Returns frames written. */
static Py_ssize_t run(FE *s, const int16_t *x, Py_ssize_t n, uint16_t *out)
{
    Py_ssize_t frames = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        int32_t v = x[i];
        if (s->dc_enable) {
            const int32_t d = wrap16(v - s->dc_in);
            s->dc_in = v;
            s->dc_out = wrap16(d + ((((s->dc_coef * s->dc_out) >> 14) + 1) >> 1));
            v = s->dc_out;
        }
        s->buf[s->nbuf++] = (int16_t)v;
        if (s->nbuf == s->size) {
            windowed_spectrum(s, s->buf);
            nr_pcan_log(s, out + frames * s->nch);
            frames++;
            memmove(s->buf, s->buf + s->step, sizeof(int16_t) * (s->size - s->step));
            s->nbuf = s->size - s->step;
        }
    }
    return frames;
}

/* ---------------------------------------------------------------- Python glue */

static void fe_free_tables(FE *s)
{
    void *ptrs[] = {s->window, s->perm, s->twiddles, s->split_k, s->split_first, s->split_tw,
                    s->weights, s->unweights, s->bin_range, s->smoothing, s->buf, s->estimate,
                    s->frame, s->z, s->wsum, s->usum, s->sig};
    for (size_t i = 0; i < sizeof(ptrs) / sizeof(ptrs[0]); i++)
        PyMem_Free(ptrs[i]);
}

static void fe_dealloc(FE *s)
{
    fe_free_tables(s);
    Py_TYPE(s)->tp_free((PyObject *)s);
}

/* Copy an int32 table of exactly n entries out of a bytes-like object. */
static int32_t *take_i32(Py_buffer *b, Py_ssize_t n, const char *name)
{
    if (b->len != n * (Py_ssize_t)sizeof(int32_t)) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd int32 values, got %zd bytes", name, n, b->len);
        return NULL;
    }
    int32_t *p = PyMem_Malloc(n ? (size_t)b->len : 1);
    if (!p) {
        PyErr_NoMemory();
        return NULL;
    }
    memcpy(p, b->buf, (size_t)b->len);
    return p;
}

static int fe_init(FE *s, PyObject *args, PyObject *kw)
{
    static char *names[] = {
        "size", "step", "fft_size", "n_channels", "window", "perm", "stages", "twiddles",
        "split_k", "split_first", "split_tw", "weights", "unweights", "bin_range",
        "nr_enable", "smoothing_bits", "smoothing", "min_signal_remaining",
        "pcan_enable", "gain_lut", "snr_shift", "log_enable", "log_shift", "correction_bits",
        "log_lut", "dc_enable", "dc_coef", NULL};
    Py_buffer window, perm, stages, twiddles, split_k, split_first, split_tw, weights,
        unweights, bin_range, smoothing, gain_lut, log_lut;
    Py_buffer *bufs[] = {&window, &perm, &stages, &twiddles, &split_k, &split_first, &split_tw,
                         &weights, &unweights, &bin_range, &smoothing, &gain_lut, &log_lut};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
        bufs[i]->obj = NULL;
    int ok = 0;
    if (s->busy) {
        PyErr_SetString(PyExc_RuntimeError, "frontend is in use by another thread");
        return -1;
    }
    fe_free_tables(s);   /* __init__ may run twice */
    memset(&s->size, 0, sizeof(FE) - offsetof(FE, size));
    if (!PyArg_ParseTupleAndKeywords(
            args, kw, "iiiiy*y*y*y*y*y*y*y*y*y*piy*ipy*ipiiy*pi", names,
            &s->size, &s->step, &s->fft_size, &s->nch, &window, &perm, &stages, &twiddles,
            &split_k, &split_first, &split_tw, &weights, &unweights, &bin_range,
            &s->nr_enable, &s->smoothing_bits, &smoothing, &s->min_signal_remaining,
            &s->pcan_enable, &gain_lut, &s->snr_shift, &s->log_enable, &s->log_shift,
            &s->correction_bits, &log_lut, &s->dc_enable, &s->dc_coef))
        goto done;
    if (s->size < 1 || s->step < 1 || s->step > s->size || s->fft_size < 4 || s->nch < 1) {
        PyErr_SetString(PyExc_ValueError, "bad frontend sizes");
        goto done;
    }
    s->ncfft = s->fft_size / 2;
    s->nbins = (int)(split_k.len / (Py_ssize_t)sizeof(int32_t));
    if (!(s->window = take_i32(&window, s->size, "window"))) goto done;
    if (!(s->perm = take_i32(&perm, s->ncfft, "perm"))) goto done;
    for (int i = 0; i < s->ncfft; i++)
        if (s->perm[i] < 0 || s->perm[i] >= s->ncfft) {
            PyErr_SetString(PyExc_ValueError, "perm out of range");
            goto done;
        }

    /* stages: (p, m, fstride) per stage in execution order; twiddles: their [p][m] tables */
    Py_ssize_t nst = stages.len / (Py_ssize_t)(3 * sizeof(int32_t)), tw_len = 0;
    if (nst < 1 || nst > MAX_STAGES || stages.len != nst * 3 * (Py_ssize_t)sizeof(int32_t)) {
        PyErr_SetString(PyExc_ValueError, "stages: expected (p, m, fstride) int32 triples");
        goto done;
    }
    s->nstages = (int)nst;
    const int32_t *sv = stages.buf;
    for (int i = 0; i < s->nstages; i++) {
        s->stage_p[i] = sv[3 * i];
        s->stage_m[i] = sv[3 * i + 1];
        s->stage_fstride[i] = sv[3 * i + 2];
        if ((s->stage_p[i] != 2 && s->stage_p[i] != 4) ||
            (Py_ssize_t)s->stage_p[i] * s->stage_m[i] * s->stage_fstride[i] != s->ncfft) {
            PyErr_SetString(PyExc_ValueError, "stages do not describe the FFT");
            goto done;
        }
        tw_len += 2 * (Py_ssize_t)s->stage_p[i] * s->stage_m[i];
    }
    if (!(s->twiddles = take_i32(&twiddles, tw_len, "twiddles"))) goto done;
    for (int i = 0, off = 0; i < s->nstages; i++) {
        s->stage_tw[i] = s->twiddles + off;
        off += 2 * s->stage_p[i] * s->stage_m[i];
    }

    if (!(s->split_k = take_i32(&split_k, s->nbins, "split_k"))) goto done;
    if (!(s->split_first = take_i32(&split_first, s->nbins, "split_first"))) goto done;
    if (!(s->split_tw = take_i32(&split_tw, 2 * (Py_ssize_t)s->nbins, "split_tw"))) goto done;
    if (!(s->weights = take_i32(&weights, s->nbins, "weights"))) goto done;
    if (!(s->unweights = take_i32(&unweights, s->nbins, "unweights"))) goto done;
    if (!(s->bin_range = take_i32(&bin_range, s->nbins, "bin_range"))) goto done;
    for (int b = 0; b < s->nbins; b++)
        if (s->split_k[b] < 1 || s->split_k[b] > s->ncfft / 2 || s->bin_range[b] < 0 ||
            s->bin_range[b] > s->nch) {
            PyErr_SetString(PyExc_ValueError, "split_k or bin_range out of range");
            goto done;
        }
    if (!(s->smoothing = take_i32(&smoothing, s->nch, "smoothing"))) goto done;
    int32_t *lut;
    if (!(lut = take_i32(&gain_lut, GAIN_LUT_LEN, "gain_lut"))) goto done;
    memcpy(s->gain_lut, lut, sizeof(s->gain_lut));
    PyMem_Free(lut);
    if (!(lut = take_i32(&log_lut, LOG_LUT_LEN, "log_lut"))) goto done;
    memcpy(s->log_lut, lut, sizeof(s->log_lut));
    PyMem_Free(lut);
    if (s->smoothing_bits < 0 || s->smoothing_bits > 16 || s->log_shift < 0 || s->log_shift > 16 ||
        s->snr_shift < 0 || s->snr_shift > 63 || s->correction_bits < -31 || s->correction_bits > 31) {
        PyErr_SetString(PyExc_ValueError, "bad fixed-point shifts");
        goto done;
    }

    s->buf = PyMem_Malloc(sizeof(int16_t) * s->size);
    s->estimate = PyMem_Malloc(sizeof(int64_t) * s->nch);
    s->frame = PyMem_Malloc(sizeof(int32_t) * s->size);
    s->z = PyMem_Malloc(sizeof(int32_t) * 2 * s->ncfft);
    s->wsum = PyMem_Malloc(sizeof(int64_t) * (s->nch + 1));
    s->usum = PyMem_Malloc(sizeof(int64_t) * (s->nch + 1));
    s->sig = PyMem_Malloc(sizeof(int64_t) * s->nch);
    if (!s->buf || !s->estimate || !s->frame || !s->z || !s->wsum || !s->usum || !s->sig) {
        PyErr_NoMemory();
        goto done;
    }
    reset_state(s);
    ok = 1;
done:
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
        if (bufs[i]->obj)
            PyBuffer_Release(bufs[i]);
    if (!ok) {
        fe_free_tables(s);
        memset(&s->size, 0, sizeof(FE) - offsetof(FE, size));
    }
    return ok ? 0 : -1;
}

static int ready(FE *s)
{
    if (!s->buf) {
        PyErr_SetString(PyExc_RuntimeError, "frontend is not initialised");
        return 0;
    }
    if (s->busy) {   /* checked and set while holding the GIL */
        PyErr_SetString(PyExc_RuntimeError, "frontend is in use by another thread");
        return 0;
    }
    return 1;
}

/* Get a C-contiguous buffer of `itemsize`-byte items ('h' int16 in, 'H' uint16 out). */
static int get_buffer(PyObject *obj, Py_buffer *b, int writable, char fmt)
{
    if (PyObject_GetBuffer(obj, b, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return 0;
    const char *f = b->format ? b->format : "B";
    if (*f == '<' || *f == '=' || *f == '@')
        f++;
    if (b->itemsize != 2 || f[0] != fmt || f[1] != '\0') {
        PyErr_Format(PyExc_TypeError, "expected a contiguous %s buffer", fmt == 'h' ? "int16" : "uint16");
        PyBuffer_Release(b);
        return 0;
    }
    return 1;
}

/* The int16 samples in and the writable uint16 features out; on failure neither is held. */
static int get_io(PyObject *xo, PyObject *outo, Py_buffer *x, Py_buffer *out)
{
    if (!get_buffer(xo, x, 0, 'h'))
        return 0;
    if (!get_buffer(outo, out, 1, 'H')) {
        PyBuffer_Release(x);
        return 0;
    }
    return 1;
}

static PyObject *fe_frames_for(FE *s, PyObject *arg)
{
    const Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    if (!ready(s))
        return NULL;
    return PyLong_FromSsize_t(frames_for(s, n < 0 ? 0 : n));
}

static PyObject *fe_process(FE *s, PyObject *args)
{
    PyObject *xo, *outo;
    if (!PyArg_ParseTuple(args, "OO", &xo, &outo) || !ready(s))
        return NULL;
    Py_buffer x, out;
    if (!get_io(xo, outo, &x, &out))
        return NULL;
    const Py_ssize_t n = x.len / 2, need = frames_for(s, n) * s->nch;
    Py_ssize_t frames = -1;
    if (out.len / 2 < need) {
        PyErr_Format(PyExc_ValueError, "output holds %zd values, %zd needed", out.len / 2, need);
    } else {
        s->busy = 1;
        Py_BEGIN_ALLOW_THREADS
        frames = run(s, x.buf, n, out.buf);
        Py_END_ALLOW_THREADS
        s->busy = 0;
    }
    PyBuffer_Release(&x);
    PyBuffer_Release(&out);
    return frames < 0 ? NULL : PyLong_FromSsize_t(frames);
}

static PyObject *fe_process_batch(FE *s, PyObject *args)
{
    PyObject *xo, *outo;
    Py_ssize_t n_clips;
    if (!PyArg_ParseTuple(args, "OnO", &xo, &n_clips, &outo) || !ready(s))
        return NULL;
    Py_buffer x, out;
    if (!get_io(xo, outo, &x, &out))
        return NULL;
    int ok = 0;
    if (n_clips < 1 || (x.len / 2) % n_clips) {
        PyErr_SetString(PyExc_ValueError, "clips do not split into n_clips equal rows");
    } else {
        const Py_ssize_t length = x.len / 2 / n_clips;
        reset_state(s);
        const Py_ssize_t per_clip = frames_for(s, length) * s->nch;
        if (out.len / 2 < per_clip * n_clips) {
            PyErr_SetString(PyExc_ValueError, "output too small");
        } else {
            s->busy = 1;
            Py_BEGIN_ALLOW_THREADS
            for (Py_ssize_t i = 0; i < n_clips; i++) {   /* each clip from fresh state */
                reset_state(s);
                run(s, (const int16_t *)x.buf + i * length, length, (uint16_t *)out.buf + i * per_clip);
            }
            reset_state(s);
            Py_END_ALLOW_THREADS
            s->busy = 0;
            ok = 1;
        }
    }
    PyBuffer_Release(&x);
    PyBuffer_Release(&out);
    if (!ok)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *fe_reset(FE *s, PyObject *Py_UNUSED(ignored))
{
    if (!ready(s))
        return NULL;
    reset_state(s);
    Py_RETURN_NONE;
}

static PyMethodDef fe_methods[] = {
    {"frames_for", (PyCFunction)fe_frames_for, METH_O,
     "frames_for(n) -> how many frames the next n samples complete"},
    {"process", (PyCFunction)fe_process, METH_VARARGS,
     "process(int16 samples, uint16 out) -> frames written to out ([frames, channels] row-major)"},
    {"process_batch", (PyCFunction)fe_process_batch, METH_VARARGS,
     "process_batch(int16 clips, n_clips, uint16 out): each equal-length clip from fresh state"},
    {"reset", (PyCFunction)fe_reset, METH_NOARGS, "forget the streaming state"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject FEType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "keywire.agent._cfrontend.Frontend",
    .tp_doc = "Microfrontend state and tables (see agent/frontend/native.py: native_frontend)",
    .tp_basicsize = sizeof(FE),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)fe_init,
    .tp_dealloc = (destructor)fe_dealloc,
    .tp_methods = fe_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_cfrontend",
    "The microfrontend's integer arithmetic in C (bit-exact with the numpy code in agent/frontend/).",
    -1, NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__cfrontend(void)
{
    if (PyType_Ready(&FEType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    Py_INCREF(&FEType);
    if (PyModule_AddObject(m, "Frontend", (PyObject *)&FEType) < 0) {
        Py_DECREF(&FEType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
