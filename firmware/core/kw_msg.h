/* Message layer: little-endian payload writer/reader and the typed messages with
 * structure (HELLO, DETECTION, SET_PARAMS). Layouts: firmware/PROTOCOL.md. */
#ifndef KW_MSG_H
#define KW_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "kw_protocol.h"

#ifdef __cplusplus
extern "C" {
#endif

struct kw_writer { uint8_t *p; size_t cap; size_t n; int err; };
struct kw_reader { const uint8_t *p; size_t len; size_t pos; int err; };

void kw_writer_init(struct kw_writer *w, uint8_t *buf, size_t cap);
void kw_put_u8(struct kw_writer *w, uint8_t v);
void kw_put_u16(struct kw_writer *w, uint16_t v);
void kw_put_u32(struct kw_writer *w, uint32_t v);
void kw_put_bytes(struct kw_writer *w, const void *data, size_t len);
/* u8 length then the bytes (truncated to `max`). */
void kw_put_str(struct kw_writer *w, const char *s, size_t max);

void kw_reader_init(struct kw_reader *r, const uint8_t *buf, size_t len);
uint8_t kw_get_u8(struct kw_reader *r);
uint16_t kw_get_u16(struct kw_reader *r);
uint32_t kw_get_u32(struct kw_reader *r);
/* u8-length string into `out` (capacity cap incl. NUL); err when it does not fit. */
void kw_get_str(struct kw_reader *r, char *out, size_t cap);
/* 0 when everything was read without running past the end and nothing is left over. */
int kw_reader_done(const struct kw_reader *r);

#define KW_ID_MAX 32u

struct kw_hello {
    uint8_t protocol_version;
    uint8_t fw_major, fw_minor, fw_patch;
    uint32_t capabilities;
    uint32_t boot_id;
    uint32_t flash_capacity;
    uint16_t sample_rate;
    uint8_t mode;
    char board_id[KW_ID_MAX + 1];
    char model_name[KW_ID_MAX + 1];
    uint32_t model_size;
    uint32_t model_crc32;
};

struct kw_detection {
    uint32_t boot_id;     /* the board's boot id: (boot_id, event_id) names a detection */
    uint32_t event_id;
    uint32_t time_ms;
    uint8_t class_index;
    uint8_t score;
    char label[KW_MAX_LABEL + 1];
};

struct kw_params {
    uint16_t average_window_duration_ms;
    uint16_t suppression_ms;
    uint16_t latency_ms;
    uint8_t detection_threshold;
    uint8_t minimum_count;
    uint8_t n_thresholds;                 /* 0: no per-class list */
    uint8_t thresholds[KW_MAX_CLASSES];
};

size_t kw_hello_encode(const struct kw_hello *m, uint8_t *buf, size_t cap);
int kw_hello_decode(const uint8_t *buf, size_t len, struct kw_hello *m);
size_t kw_detection_encode(const struct kw_detection *m, uint8_t *buf, size_t cap);
int kw_detection_decode(const uint8_t *buf, size_t len, struct kw_detection *m);
size_t kw_params_encode(const struct kw_params *m, uint8_t *buf, size_t cap);
int kw_params_decode(const uint8_t *buf, size_t len, struct kw_params *m);

#ifdef __cplusplus
}
#endif
#endif
