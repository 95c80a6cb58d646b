/* The board application core: protocol handling, detection post-processing and event
 * delivery, model transfer into the staging area, audio framing in stream mode.
 * Single-threaded: call kw_board_rx / kw_board_poll / kw_board_scores from the main loop;
 * only kw_board_audio may run in the microphone interrupt (it only touches the ring). */
#ifndef KW_BOARD_H
#define KW_BOARD_H

#include <stdint.h>

#include "kw_detect.h"
#include "kw_frame.h"
#include "kw_hal.h"
#include "kw_msg.h"
#include "kw_protocol.h"
#include "kw_ring.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KW_FW_MAJOR 0
#define KW_FW_MINOR 1
#define KW_FW_PATCH 0
#define KW_RED_HOLD_MS 1000u

struct kw_board_config {
    char board_id[KW_ID_MAX + 1];
    uint32_t boot_id;          /* differs on every boot (e.g. from the TRNG) */
    uint32_t flash_capacity;   /* bytes in the model staging area */
    uint16_t sample_rate;
    uint32_t capabilities;
};

struct kw_board_stats {
    uint32_t rx_frames;
    uint32_t rx_bad_crc;
    uint32_t rx_oversize;
    uint32_t rx_bad_version;
    uint32_t rx_unknown_type;
    uint32_t rx_bad_length;
    uint32_t tx_frames;
    uint32_t tx_dropped;
    uint32_t detections;
    uint32_t detections_resent;
    uint32_t detections_expired;
    uint32_t audio_frames;
    uint32_t inferences;
    uint32_t model_errors;
};

struct kw_pending_detection {
    struct kw_detection det;
    uint32_t last_sent;
    uint8_t tries;
    uint8_t used;
};

struct kw_board {
    struct kw_hal hal;
    struct kw_board_config cfg;
    struct kw_decoder dec;
    struct kw_detector det;
    struct kw_ring ring;
    struct kw_board_stats stats;
    uint8_t mode;
    uint8_t scores_every;
    uint8_t have_model;
    uint8_t n_classes;
    char labels[KW_MAX_CLASSES][KW_MAX_LABEL + 1];
    char model_name[KW_ID_MAX + 1];
    uint32_t model_size;
    uint32_t model_crc32;
    uint16_t tx_seq;
    uint32_t next_event_id;
    struct kw_pending_detection pending[KW_DETECTION_QUEUE];
    /* model transfer */
    uint8_t xfer_active;
    uint32_t xfer_size;
    uint32_t xfer_crc;
    uint32_t xfer_next;
    uint32_t xfer_running_crc;
    /* LEDs */
    uint8_t led_red, led_green, leds_remote;
    uint32_t red_since;
    /* audio */
    uint32_t audio_frame_index;
    uint8_t tx[KW_MAX_ENCODED];
    uint8_t payload[KW_MAX_PAYLOAD];
};

void kw_board_init(struct kw_board *b, const struct kw_hal *hal, const struct kw_board_config *cfg,
                   int16_t *ring_storage, uint32_t ring_capacity);
/* Announce the board (HELLO); call once after init, i.e. on every boot. */
void kw_board_start(struct kw_board *b);
/* The glue reports the active model: name, labels, size/CRC of its bytes, default params. */
int kw_board_set_model(struct kw_board *b, const char *name, const char *const *labels, uint8_t n_classes,
                       uint32_t size, uint32_t crc32, const struct kw_params *params);
void kw_board_set_mode(struct kw_board *b, uint8_t mode);
/* Bytes from the UART. */
void kw_board_rx(struct kw_board *b, const uint8_t *data, uint32_t len);
/* Periodic work: resend unacknowledged detections, LED timeouts, stream audio frames. */
void kw_board_poll(struct kw_board *b);
/* Microphone samples (stream mode); safe from an interrupt. Returns samples stored. */
uint32_t kw_board_audio(struct kw_board *b, const int16_t *samples, uint32_t n);
/* One inference result (uint8 per class) in detect mode; returns the post-processing result. */
struct kw_detect_result kw_board_scores(struct kw_board *b, const uint8_t *scores);
/* Audio activity (green LED) as seen by the glue. */
void kw_board_activity(struct kw_board *b, int active);
void kw_board_log(struct kw_board *b, uint8_t level, const char *text);
/* Send one frame; returns 0 or -1 (dropped). */
int kw_board_send(struct kw_board *b, uint8_t type, const uint8_t *payload, uint32_t len);

#ifdef __cplusplus
}
#endif
#endif
