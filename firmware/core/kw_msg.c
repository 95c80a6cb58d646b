/* Message layer implementation: explicit little-endian byte packing (no struct casts,
 * so the layout is the same on the Cortex-M33 and on any host). */
#include "kw_msg.h"

#include <string.h>

void kw_writer_init(struct kw_writer *w, uint8_t *buf, size_t cap)
{
    w->p = buf; w->cap = cap; w->n = 0; w->err = 0;
}

void kw_put_bytes(struct kw_writer *w, const void *data, size_t len)
{
    if (w->err || w->n + len > w->cap) { w->err = 1; return; }
    if (len) memcpy(w->p + w->n, data, len);
    w->n += len;
}

void kw_put_u8(struct kw_writer *w, uint8_t v) { kw_put_bytes(w, &v, 1); }

void kw_put_u16(struct kw_writer *w, uint16_t v)
{
    uint8_t b[2];
    b[0] = (uint8_t)v; b[1] = (uint8_t)(v >> 8);
    kw_put_bytes(w, b, 2);
}

void kw_put_u32(struct kw_writer *w, uint32_t v)
{
    uint8_t b[4];
    b[0] = (uint8_t)v; b[1] = (uint8_t)(v >> 8); b[2] = (uint8_t)(v >> 16); b[3] = (uint8_t)(v >> 24);
    kw_put_bytes(w, b, 4);
}

void kw_put_str(struct kw_writer *w, const char *s, size_t max)
{
    size_t n = s ? strlen(s) : 0;
    if (n > max) n = max;
    if (n > 255) n = 255;
    kw_put_u8(w, (uint8_t)n);
    kw_put_bytes(w, s, n);
}

void kw_reader_init(struct kw_reader *r, const uint8_t *buf, size_t len)
{
    r->p = buf; r->len = len; r->pos = 0; r->err = 0;
}

static const uint8_t *take(struct kw_reader *r, size_t n)
{
    const uint8_t *p;
    if (r->err || r->pos + n > r->len) { r->err = 1; return NULL; }
    p = r->p + r->pos;
    r->pos += n;
    return p;
}

uint8_t kw_get_u8(struct kw_reader *r)
{
    const uint8_t *p = take(r, 1);
    return p ? p[0] : 0;
}

uint16_t kw_get_u16(struct kw_reader *r)
{
    const uint8_t *p = take(r, 2);
    return p ? (uint16_t)(p[0] | (p[1] << 8)) : 0;
}

uint32_t kw_get_u32(struct kw_reader *r)
{
    const uint8_t *p = take(r, 4);
    return p ? (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24) : 0;
}

void kw_get_str(struct kw_reader *r, char *out, size_t cap)
{
    size_t n = kw_get_u8(r);
    const uint8_t *p;
    out[0] = '\0';
    if (r->err) return;
    if (n + 1 > cap) { r->err = 1; return; }
    p = take(r, n);
    if (!p) return;
    memcpy(out, p, n);
    out[n] = '\0';
}

int kw_reader_done(const struct kw_reader *r)
{
    return (r->err || r->pos != r->len) ? -1 : 0;
}

size_t kw_hello_encode(const struct kw_hello *m, uint8_t *buf, size_t cap)
{
    struct kw_writer w;
    kw_writer_init(&w, buf, cap);
    kw_put_u8(&w, m->protocol_version);
    kw_put_u8(&w, m->fw_major); kw_put_u8(&w, m->fw_minor); kw_put_u8(&w, m->fw_patch);
    kw_put_u32(&w, m->capabilities);
    kw_put_u32(&w, m->boot_id);
    kw_put_u32(&w, m->flash_capacity);
    kw_put_u16(&w, m->sample_rate);
    kw_put_u8(&w, m->mode);
    kw_put_str(&w, m->board_id, KW_ID_MAX);
    kw_put_str(&w, m->model_name, KW_ID_MAX);
    kw_put_u32(&w, m->model_size);
    kw_put_u32(&w, m->model_crc32);
    return w.err ? 0 : w.n;
}

int kw_hello_decode(const uint8_t *buf, size_t len, struct kw_hello *m)
{
    struct kw_reader r;
    kw_reader_init(&r, buf, len);
    m->protocol_version = kw_get_u8(&r);
    m->fw_major = kw_get_u8(&r); m->fw_minor = kw_get_u8(&r); m->fw_patch = kw_get_u8(&r);
    m->capabilities = kw_get_u32(&r);
    m->boot_id = kw_get_u32(&r);
    m->flash_capacity = kw_get_u32(&r);
    m->sample_rate = kw_get_u16(&r);
    m->mode = kw_get_u8(&r);
    kw_get_str(&r, m->board_id, sizeof(m->board_id));
    kw_get_str(&r, m->model_name, sizeof(m->model_name));
    m->model_size = kw_get_u32(&r);
    m->model_crc32 = kw_get_u32(&r);
    return kw_reader_done(&r);
}

size_t kw_detection_encode(const struct kw_detection *m, uint8_t *buf, size_t cap)
{
    struct kw_writer w;
    kw_writer_init(&w, buf, cap);
    kw_put_u32(&w, m->boot_id);
    kw_put_u32(&w, m->event_id);
    kw_put_u32(&w, m->time_ms);
    kw_put_u8(&w, m->class_index);
    kw_put_u8(&w, m->score);
    kw_put_str(&w, m->label, KW_MAX_LABEL);
    return w.err ? 0 : w.n;
}

int kw_detection_decode(const uint8_t *buf, size_t len, struct kw_detection *m)
{
    struct kw_reader r;
    kw_reader_init(&r, buf, len);
    m->boot_id = kw_get_u32(&r);
    m->event_id = kw_get_u32(&r);
    m->time_ms = kw_get_u32(&r);
    m->class_index = kw_get_u8(&r);
    m->score = kw_get_u8(&r);
    kw_get_str(&r, m->label, sizeof(m->label));
    return kw_reader_done(&r);
}

size_t kw_params_encode(const struct kw_params *m, uint8_t *buf, size_t cap)
{
    struct kw_writer w;
    kw_writer_init(&w, buf, cap);
    if (m->n_thresholds > KW_MAX_CLASSES) return 0;
    kw_put_u16(&w, m->average_window_duration_ms);
    kw_put_u16(&w, m->suppression_ms);
    kw_put_u16(&w, m->latency_ms);
    kw_put_u8(&w, m->detection_threshold);
    kw_put_u8(&w, m->minimum_count);
    kw_put_u8(&w, m->n_thresholds);
    kw_put_bytes(&w, m->thresholds, m->n_thresholds);
    return w.err ? 0 : w.n;
}

int kw_params_decode(const uint8_t *buf, size_t len, struct kw_params *m)
{
    struct kw_reader r;
    uint8_t i;
    kw_reader_init(&r, buf, len);
    m->average_window_duration_ms = kw_get_u16(&r);
    m->suppression_ms = kw_get_u16(&r);
    m->latency_ms = kw_get_u16(&r);
    m->detection_threshold = kw_get_u8(&r);
    m->minimum_count = kw_get_u8(&r);
    m->n_thresholds = kw_get_u8(&r);
    if (m->n_thresholds > KW_MAX_CLASSES) return -1;
    for (i = 0; i < m->n_thresholds; i++) m->thresholds[i] = kw_get_u8(&r);
    if (m->latency_ms == 0) return -1;
    return kw_reader_done(&r);
}
