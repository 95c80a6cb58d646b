/* Detection post-processing with MLTK RecognizeCommands semantics, identical to
 * keywire.agent.detector.Detector (parity is tested with shared vectors):
 *  - minimum_count == 0: the latest scores are used, no averaging;
 *  - else (now, scores) joins a ring of at most 50 results (dropped when full), results
 *    older than now - average_window_duration_ms leave, fewer than minimum_count => no
 *    detection, else per-class integer mean of the uint32 sum;
 *  - top class = first maximum; detected when average > threshold (strict), the label does
 *    not start with '_', and it differs from the last detected class or more than
 *    suppression_ms passed since that detection. */
#ifndef KW_DETECT_H
#define KW_DETECT_H

#include <stdint.h>

#include "kw_msg.h"
#include "kw_protocol.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KW_DETECT_MAX_RESULTS 50u

struct kw_detect_result {
    int class_index;      /* top class, -1 when too few results */
    int score;            /* its average 0-255, 0 when too few results */
    int detected;         /* 1 for a new detection */
    int reset_frontend;   /* MLTK resets the frontend on a detection when suppression_ms <= 1 */
};

struct kw_detector {
    struct kw_params params;
    uint8_t n_classes;
    uint8_t ignore[KW_MAX_CLASSES];        /* 1 for labels starting with '_' */
    int64_t times[KW_DETECT_MAX_RESULTS];
    uint8_t scores[KW_DETECT_MAX_RESULTS][KW_MAX_CLASSES];
    uint32_t first;                        /* index of the oldest result */
    uint32_t count;
    int last_class;                        /* -1: none yet */
    int64_t last_time;
    uint32_t averaged[KW_MAX_CLASSES];
};

/* labels: n_classes NUL-terminated strings (only the first character is kept). Returns -1
 * for invalid params (threshold list length, zero latency) or too many classes. */
int kw_detector_init(struct kw_detector *d, const struct kw_params *p, const char *const *labels,
                     uint8_t n_classes);
/* Same as init but the ignore flags are given directly (1 = label starts with '_'). */
int kw_detector_init_flags(struct kw_detector *d, const struct kw_params *p, const uint8_t *ignore,
                           uint8_t n_classes);
int kw_detector_set_params(struct kw_detector *d, const struct kw_params *p);
void kw_detector_reset(struct kw_detector *d);
struct kw_detect_result kw_detector_process(struct kw_detector *d, int64_t now_ms, const uint8_t *scores);

#ifdef __cplusplus
}
#endif
#endif
