/* Detection post-processing (see kw_detect.h). */
#include "kw_detect.h"

#include <string.h>

static int check_params(const struct kw_params *p, uint8_t n_classes)
{
    if (p->latency_ms == 0) return -1;
    if (p->n_thresholds != 0 && p->n_thresholds != n_classes) return -1;
    return 0;
}

int kw_detector_init_flags(struct kw_detector *d, const struct kw_params *p, const uint8_t *ignore,
                           uint8_t n_classes)
{
    if (n_classes == 0 || n_classes > KW_MAX_CLASSES) return -1;
    if (check_params(p, n_classes) != 0) return -1;
    memset(d, 0, sizeof(*d));
    d->params = *p;
    d->n_classes = n_classes;
    memcpy(d->ignore, ignore, n_classes);
    d->last_class = -1;
    return 0;
}

int kw_detector_init(struct kw_detector *d, const struct kw_params *p, const char *const *labels,
                     uint8_t n_classes)
{
    uint8_t ignore[KW_MAX_CLASSES];
    uint8_t i;
    if (n_classes == 0 || n_classes > KW_MAX_CLASSES) return -1;
    for (i = 0; i < n_classes; i++) ignore[i] = (uint8_t)(labels[i] && labels[i][0] == '_');
    return kw_detector_init_flags(d, p, ignore, n_classes);
}

int kw_detector_set_params(struct kw_detector *d, const struct kw_params *p)
{
    if (check_params(p, d->n_classes) != 0) return -1;
    d->params = *p;
    return 0;
}

void kw_detector_reset(struct kw_detector *d)
{
    d->first = 0;
    d->count = 0;
    d->last_class = -1;
    d->last_time = 0;
}

struct kw_detect_result kw_detector_process(struct kw_detector *d, int64_t now_ms, const uint8_t *scores)
{
    struct kw_detect_result res = {-1, 0, 0, 0};
    const struct kw_params *p = &d->params;
    uint8_t c;
    int top = 0;
    int threshold;

    if (p->minimum_count == 0) {
        for (c = 0; c < d->n_classes; c++) d->averaged[c] = scores[c];
    } else {
        int64_t limit = now_ms - (int64_t)p->average_window_duration_ms;
        uint32_t i;
        if (d->count < KW_DETECT_MAX_RESULTS) {
            uint32_t slot = (d->first + d->count) % KW_DETECT_MAX_RESULTS;
            d->times[slot] = now_ms;
            memcpy(d->scores[slot], scores, d->n_classes);
            d->count++;
        }
        while (d->count > 0 && d->times[d->first] < limit) {
            d->first = (d->first + 1) % KW_DETECT_MAX_RESULTS;
            d->count--;
        }
        if (d->count < p->minimum_count) {
            memset(d->averaged, 0, sizeof(d->averaged)); /* SCORES then reports zeros, like score 0 */
            return res;
        }
        for (c = 0; c < d->n_classes; c++) {
            uint32_t sum = 0;
            for (i = 0; i < d->count; i++) sum += d->scores[(d->first + i) % KW_DETECT_MAX_RESULTS][c];
            d->averaged[c] = sum / d->count;
        }
    }
    for (c = 1; c < d->n_classes; c++)
        if (d->averaged[c] > d->averaged[top]) top = c;
    res.class_index = top;
    res.score = (int)d->averaged[top];
    threshold = p->n_thresholds ? p->thresholds[top] : p->detection_threshold;
    if (res.score > threshold && !d->ignore[top]
        && (top != d->last_class || now_ms - d->last_time > (int64_t)p->suppression_ms)) {
        d->last_class = top;
        d->last_time = now_ms;
        res.detected = 1;
        res.reset_frontend = p->suppression_ms <= 1;
    }
    return res;
}
