/* Extra entry points for the host shared library (libkwcore.so) only: sizes and field
 * access so the Python side (ctypes) can allocate and inspect the core's structures
 * without mirroring their layout. Not linked into the board image. */
#include <string.h>

#include "kw_board.h"

size_t kw_sizeof_board(void) { return sizeof(struct kw_board); }
size_t kw_sizeof_decoder(void) { return sizeof(struct kw_decoder); }
size_t kw_sizeof_detector(void) { return sizeof(struct kw_detector); }
uint32_t kw_protocol_version(void) { return KW_PROTOCOL_VERSION; }
uint32_t kw_max_payload(void) { return KW_MAX_PAYLOAD; }
uint32_t kw_max_encoded(void) { return KW_MAX_ENCODED; }

/* Board statistics as a flat array of uint32 in struct order; returns the count. */
uint32_t kw_board_stats_array(const struct kw_board *b, uint32_t *out, uint32_t cap)
{
    uint32_t n = (uint32_t)(sizeof(b->stats) / sizeof(uint32_t));
    if (cap < n) n = cap;
    memcpy(out, &b->stats, n * sizeof(uint32_t));
    return n;
}

uint8_t kw_board_mode(const struct kw_board *b) { return b->mode; }
uint8_t kw_board_scores_every(const struct kw_board *b) { return b->scores_every; }
void kw_board_leds(const struct kw_board *b, uint8_t *red, uint8_t *green) { *red = b->led_red; *green = b->led_green; }
uint32_t kw_board_pending(const struct kw_board *b)
{
    uint32_t i, n = 0;
    for (i = 0; i < KW_DETECTION_QUEUE; i++) n += b->pending[i].used;
    return n;
}
/* Current detection parameters (after SET_PARAMS) for the emulator's status line. */
void kw_board_params(const struct kw_board *b, struct kw_params *out) { *out = b->det.params; }

/* Decoder access: the last frame's header and payload pointer. */
uint8_t kw_decoder_frame_type(const struct kw_decoder *d) { return d->frame.type; }
uint16_t kw_decoder_frame_seq(const struct kw_decoder *d) { return d->frame.seq; }
uint16_t kw_decoder_frame_len(const struct kw_decoder *d) { return d->frame.len; }
uint8_t kw_decoder_frame_version(const struct kw_decoder *d) { return d->frame.version; }
const uint8_t *kw_decoder_frame_payload(const struct kw_decoder *d) { return d->frame.payload; }

/* Detector with labels given as ignore flags, params as separate values (ctypes-friendly). */
int kw_detector_setup(struct kw_detector *d, uint8_t n_classes, const uint8_t *ignore,
                      uint32_t window_ms, uint8_t threshold, const uint8_t *threshold_list,
                      uint32_t suppression_ms, uint8_t minimum_count, uint32_t latency_ms)
{
    struct kw_params p;
    memset(&p, 0, sizeof(p));
    p.average_window_duration_ms = (uint16_t)window_ms;
    p.detection_threshold = threshold;
    p.suppression_ms = (uint16_t)suppression_ms;
    p.minimum_count = minimum_count;
    p.latency_ms = (uint16_t)latency_ms;
    if (threshold_list) {
        if (n_classes > KW_MAX_CLASSES) return -1;
        p.n_thresholds = n_classes;
        memcpy(p.thresholds, threshold_list, n_classes);
    }
    return kw_detector_init_flags(d, &p, ignore, n_classes);
}

/* One step; writes class, score, detected into out[3]. */
void kw_detector_step(struct kw_detector *d, int64_t now_ms, const uint8_t *scores, int32_t *out)
{
    struct kw_detect_result r = kw_detector_process(d, now_ms, scores);
    out[0] = r.class_index;
    out[1] = r.score;
    out[2] = r.detected;
}
