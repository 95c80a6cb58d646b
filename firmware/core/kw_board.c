/* Board application core (see kw_board.h and firmware/PROTOCOL.md). */
#include "kw_board.h"

#include <string.h>

static uint32_t now(struct kw_board *b) { return b->hal.millis(b->hal.ctx); }

int kw_board_send(struct kw_board *b, uint8_t type, const uint8_t *payload, uint32_t len)
{
    size_t n = kw_frame_encode(type, b->tx_seq++, payload, len, b->tx, sizeof(b->tx));
    if (n == 0 || b->hal.uart_write(b->hal.ctx, b->tx, (uint32_t)n) != 0) {
        b->stats.tx_dropped++;
        return -1;
    }
    b->stats.tx_frames++;
    return 0;
}

static void send_error(struct kw_board *b, uint8_t code, uint8_t ref_type, uint16_t ref_seq, const char *text)
{
    uint8_t buf[80];
    struct kw_writer w;
    kw_writer_init(&w, buf, sizeof(buf));
    kw_put_u8(&w, code);
    kw_put_u8(&w, ref_type);
    kw_put_u16(&w, ref_seq);
    kw_put_bytes(&w, text, strlen(text) < 64 ? strlen(text) : 64);
    kw_board_send(b, KW_MSG_ERROR, buf, (uint32_t)w.n);
}

static void send_ack(struct kw_board *b, uint8_t type, uint16_t seq, uint8_t status)
{
    uint8_t buf[4];
    buf[0] = type; buf[1] = (uint8_t)seq; buf[2] = (uint8_t)(seq >> 8); buf[3] = status;
    kw_board_send(b, KW_MSG_ACK, buf, 4);
}

static void send_model_ack(struct kw_board *b, uint8_t stage, uint8_t status)
{
    uint8_t buf[6];
    struct kw_writer w;
    kw_writer_init(&w, buf, sizeof(buf));
    kw_put_u8(&w, stage);
    kw_put_u8(&w, status);
    kw_put_u32(&w, b->xfer_next);
    kw_board_send(b, KW_MSG_MODEL_ACK, buf, (uint32_t)w.n);
}

static void send_hello(struct kw_board *b)
{
    struct kw_hello h;
    size_t n;
    memset(&h, 0, sizeof(h));
    h.protocol_version = KW_PROTOCOL_VERSION;
    h.fw_major = KW_FW_MAJOR; h.fw_minor = KW_FW_MINOR; h.fw_patch = KW_FW_PATCH;
    h.capabilities = b->cfg.capabilities;
    h.boot_id = b->cfg.boot_id;
    h.flash_capacity = b->cfg.flash_capacity;
    h.sample_rate = b->cfg.sample_rate;
    h.mode = b->mode;
    memcpy(h.board_id, b->cfg.board_id, sizeof(h.board_id));
    memcpy(h.model_name, b->model_name, sizeof(h.model_name));
    h.model_size = b->model_size;
    h.model_crc32 = b->model_crc32;
    n = kw_hello_encode(&h, b->payload, sizeof(b->payload));
    if (n) kw_board_send(b, KW_MSG_HELLO, b->payload, (uint32_t)n);
}

static void set_leds(struct kw_board *b, int red, int green)
{
    uint8_t buf[2];
    if (b->led_red == (uint8_t)red && b->led_green == (uint8_t)green) return;
    b->led_red = (uint8_t)red;
    b->led_green = (uint8_t)green;
    if (b->hal.led_set) b->hal.led_set(b->hal.ctx, red, green);
    if (!b->leds_remote) { /* report the board's own LED decisions so the agent can mirror them */
        buf[0] = (uint8_t)red; buf[1] = (uint8_t)green;
        kw_board_send(b, KW_MSG_LED, buf, 2);
    }
}

void kw_board_init(struct kw_board *b, const struct kw_hal *hal, const struct kw_board_config *cfg,
                   int16_t *ring_storage, uint32_t ring_capacity)
{
    memset(b, 0, sizeof(*b));
    b->hal = *hal;
    b->cfg = *cfg;
    b->cfg.board_id[KW_ID_MAX] = '\0';
    kw_decoder_init(&b->dec);
    kw_ring_init(&b->ring, ring_storage, ring_capacity);
    b->mode = KW_MODE_DETECT;
    b->next_event_id = 1;
}

void kw_board_start(struct kw_board *b) { send_hello(b); }

int kw_board_set_model(struct kw_board *b, const char *name, const char *const *labels, uint8_t n_classes,
                       uint32_t size, uint32_t crc32, const struct kw_params *params)
{
    uint8_t i;
    if (kw_detector_init(&b->det, params, labels, n_classes) != 0) return -1;
    for (i = 0; i < n_classes; i++) {
        strncpy(b->labels[i], labels[i] ? labels[i] : "", KW_MAX_LABEL);
        b->labels[i][KW_MAX_LABEL] = '\0';
    }
    strncpy(b->model_name, name ? name : "", KW_ID_MAX);
    b->model_name[KW_ID_MAX] = '\0';
    b->n_classes = n_classes;
    b->model_size = size;
    b->model_crc32 = crc32;
    b->have_model = 1;
    return 0;
}

void kw_board_set_mode(struct kw_board *b, uint8_t mode)
{
    b->mode = mode;
    b->leds_remote = (mode == KW_MODE_STREAM); /* the agent drives the LEDs in stream mode */
    kw_ring_clear(&b->ring);
    if (b->have_model) kw_detector_reset(&b->det);
}

static void queue_detection(struct kw_board *b, const struct kw_detection *d)
{
    unsigned i, slot = 0;
    uint32_t oldest = 0xFFFFFFFFu;
    for (i = 0; i < KW_DETECTION_QUEUE; i++) {
        if (!b->pending[i].used) { slot = i; oldest = 0; break; }
        if (b->pending[i].det.event_id < oldest) { oldest = b->pending[i].det.event_id; slot = i; }
    }
    if (b->pending[slot].used) b->stats.detections_expired++;
    b->pending[slot].det = *d;
    b->pending[slot].used = 1;
    b->pending[slot].tries = 0;
    b->pending[slot].last_sent = 0;
}

static void send_pending(struct kw_board *b, struct kw_pending_detection *p, uint32_t t)
{
    size_t n = kw_detection_encode(&p->det, b->payload, sizeof(b->payload));
    if (p->tries > 0) b->stats.detections_resent++;
    p->tries++;
    p->last_sent = t;
    if (n) kw_board_send(b, KW_MSG_DETECTION, b->payload, (uint32_t)n);
}

struct kw_detect_result kw_board_scores(struct kw_board *b, const uint8_t *scores)
{
    struct kw_detect_result r = {-1, 0, 0, 0};
    uint32_t t = now(b);
    if (!b->have_model || b->mode != KW_MODE_DETECT) return r;
    b->stats.inferences++;
    r = kw_detector_process(&b->det, (int64_t)t, scores);
    if (r.detected) {
        struct kw_detection d;
        unsigned i;
        memset(&d, 0, sizeof(d));
        d.boot_id = b->cfg.boot_id;
        d.event_id = b->next_event_id++;
        d.time_ms = t;
        d.class_index = (uint8_t)r.class_index;
        d.score = (uint8_t)r.score;
        memcpy(d.label, b->labels[r.class_index], sizeof(d.label));
        b->stats.detections++;
        queue_detection(b, &d);
        for (i = 0; i < KW_DETECTION_QUEUE; i++)
            if (b->pending[i].used && b->pending[i].det.event_id == d.event_id) send_pending(b, &b->pending[i], t);
        b->red_since = t;
        set_leds(b, 1, b->led_green);
    }
    if (b->scores_every && b->stats.inferences % b->scores_every == 0) {
        struct kw_writer w;
        uint8_t c;
        kw_writer_init(&w, b->payload, sizeof(b->payload));
        kw_put_u32(&w, t);
        kw_put_u8(&w, b->n_classes);
        for (c = 0; c < b->n_classes; c++) kw_put_u8(&w, (uint8_t)b->det.averaged[c]);
        kw_board_send(b, KW_MSG_SCORES, b->payload, (uint32_t)w.n);
    }
    return r;
}

void kw_board_activity(struct kw_board *b, int active)
{
    if (!b->leds_remote) set_leds(b, b->led_red, active ? 1 : 0);
}

void kw_board_log(struct kw_board *b, uint8_t level, const char *text)
{
    uint8_t buf[128];
    size_t n = strlen(text);
    if (n > sizeof(buf) - 1) n = sizeof(buf) - 1;
    buf[0] = level;
    memcpy(buf + 1, text, n);
    kw_board_send(b, KW_MSG_LOG, buf, (uint32_t)(n + 1));
}

uint32_t kw_board_audio(struct kw_board *b, const int16_t *samples, uint32_t n)
{
    if (b->mode != KW_MODE_STREAM) return 0;
    return kw_ring_write(&b->ring, samples, n);
}

void kw_board_poll(struct kw_board *b)
{
    uint32_t t = now(b);
    unsigned i;
    for (i = 0; i < KW_DETECTION_QUEUE; i++) {
        struct kw_pending_detection *p = &b->pending[i];
        if (!p->used || t - p->last_sent < KW_DETECTION_RETRY_MS) continue;
        if (p->tries >= KW_DETECTION_MAX_TRIES) { p->used = 0; b->stats.detections_expired++; continue; }
        send_pending(b, p, t);
    }
    if (!b->leds_remote && b->led_red && t - b->red_since >= KW_RED_HOLD_MS) set_leds(b, 0, b->led_green);
    while (b->mode == KW_MODE_STREAM && kw_ring_count(&b->ring) >= KW_AUDIO_FRAME_SAMPLES) {
        int16_t s[KW_AUDIO_FRAME_SAMPLES];
        uint32_t k;
        struct kw_writer w;
        kw_ring_read(&b->ring, s, KW_AUDIO_FRAME_SAMPLES);
        kw_writer_init(&w, b->payload, sizeof(b->payload));
        kw_put_u32(&w, b->audio_frame_index++);
        kw_put_u16(&w, (uint16_t)KW_AUDIO_FRAME_SAMPLES);
        for (k = 0; k < KW_AUDIO_FRAME_SAMPLES; k++) kw_put_u16(&w, (uint16_t)s[k]);
        b->stats.audio_frames++;
        kw_board_send(b, KW_MSG_AUDIO, b->payload, (uint32_t)w.n);
    }
}

static void on_model_begin(struct kw_board *b, const struct kw_frame *f)
{
    struct kw_reader r;
    uint32_t size, crc;
    kw_reader_init(&r, f->payload, f->len);
    size = kw_get_u32(&r);
    crc = kw_get_u32(&r);
    if (kw_reader_done(&r) != 0) { b->stats.rx_bad_length++; send_error(b, KW_ERR_BAD_LENGTH, f->type, f->seq, "bad MODEL_BEGIN"); return; }
    b->xfer_active = 0;
    b->xfer_next = 0;
    if (!(b->cfg.capabilities & KW_CAP_MODEL_UPDATE)) { send_model_ack(b, KW_STAGE_BEGIN, KW_ST_UNSUPPORTED); return; }
    if (size == 0 || size > b->cfg.flash_capacity) {
        b->stats.model_errors++;
        send_model_ack(b, KW_STAGE_BEGIN, KW_ST_TOO_LARGE);
        send_error(b, KW_ERR_MODEL_TOO_LARGE, f->type, f->seq, "model does not fit the staging area");
        return;
    }
    if (b->hal.flash_erase(b->hal.ctx, size) != 0) {
        b->stats.model_errors++;
        send_model_ack(b, KW_STAGE_BEGIN, KW_ST_FLASH_ERROR);
        return;
    }
    b->xfer_active = 1;
    b->xfer_size = size;
    b->xfer_crc = crc;
    b->xfer_running_crc = 0;
    send_model_ack(b, KW_STAGE_BEGIN, KW_ST_OK);
}

static void on_model_chunk(struct kw_board *b, const struct kw_frame *f)
{
    uint32_t offset, len;
    const uint8_t *data = f->payload + 4;
    if (f->len < 5) { b->stats.rx_bad_length++; send_error(b, KW_ERR_BAD_LENGTH, f->type, f->seq, "bad MODEL_CHUNK"); return; }
    if (!b->xfer_active) { send_model_ack(b, KW_STAGE_CHUNK, KW_ST_NOT_IN_TRANSFER); return; }
    offset = (uint32_t)f->payload[0] | ((uint32_t)f->payload[1] << 8) | ((uint32_t)f->payload[2] << 16)
           | ((uint32_t)f->payload[3] << 24);
    len = f->len - 4u;
    if (offset < b->xfer_next && offset + len <= b->xfer_next) { /* a resent chunk already stored */
        send_model_ack(b, KW_STAGE_CHUNK, KW_ST_OK);
        return;
    }
    if (offset != b->xfer_next || offset + len > b->xfer_size) {
        send_model_ack(b, KW_STAGE_CHUNK, KW_ST_BAD_OFFSET);
        return;
    }
    if (b->hal.flash_write(b->hal.ctx, offset, data, len) != 0) {
        b->stats.model_errors++;
        b->xfer_active = 0;
        send_model_ack(b, KW_STAGE_CHUNK, KW_ST_FLASH_ERROR);
        return;
    }
    b->xfer_running_crc = kw_crc32(b->xfer_running_crc, data, len);
    b->xfer_next = offset + len;
    send_model_ack(b, KW_STAGE_CHUNK, KW_ST_OK);
}

static uint32_t staged_crc(struct kw_board *b, uint32_t size, int *err)
{
    uint8_t buf[256];
    uint32_t off = 0, crc = 0;
    *err = 0;
    while (off < size) {
        uint32_t n = size - off < sizeof(buf) ? size - off : (uint32_t)sizeof(buf);
        if (b->hal.flash_read(b->hal.ctx, off, buf, n) != 0) { *err = 1; return 0; }
        crc = kw_crc32(crc, buf, n);
        off += n;
    }
    return crc;
}

static void on_model_end(struct kw_board *b, const struct kw_frame *f)
{
    struct kw_reader r;
    uint32_t size, crc;
    int err;
    kw_reader_init(&r, f->payload, f->len);
    size = kw_get_u32(&r);
    crc = kw_get_u32(&r);
    if (kw_reader_done(&r) != 0) { b->stats.rx_bad_length++; send_error(b, KW_ERR_BAD_LENGTH, f->type, f->seq, "bad MODEL_END"); return; }
    if (!b->xfer_active) {
        /* a resent END whose ACK was lost: the model is already active */
        int done = b->have_model && b->model_size == size && b->model_crc32 == crc;
        send_model_ack(b, KW_STAGE_END, done ? KW_ST_OK : KW_ST_NOT_IN_TRANSFER);
        return;
    }
    if (b->xfer_next != size || size != b->xfer_size) { send_model_ack(b, KW_STAGE_END, KW_ST_BAD_OFFSET); return; }
    b->xfer_active = 0;
    if (crc != b->xfer_crc || b->xfer_running_crc != crc || staged_crc(b, size, &err) != crc || err) {
        b->stats.model_errors++;
        send_model_ack(b, KW_STAGE_END, KW_ST_CRC_MISMATCH);
        return;
    }
    if (b->hal.model_activate(b->hal.ctx, size, crc) != 0) {
        b->stats.model_errors++;
        send_model_ack(b, KW_STAGE_END, KW_ST_ACTIVATE_FAILED);
        send_error(b, KW_ERR_BAD_STATE, f->type, f->seq, "staged model rejected; old model kept");
        return;
    }
    send_model_ack(b, KW_STAGE_END, KW_ST_OK);
    send_hello(b); /* same boot_id: informs the agent of the new model */
}

static void dispatch(struct kw_board *b, const struct kw_frame *f)
{
    struct kw_reader r;
    switch (f->type) {
    case KW_MSG_GET_INFO:
        send_hello(b);
        break;
    case KW_MSG_PING:
        if (f->len != 4) { b->stats.rx_bad_length++; send_error(b, KW_ERR_BAD_LENGTH, f->type, f->seq, "bad PING"); break; }
    {
        uint8_t pong[8];
        memcpy(pong, f->payload, 4); /* token, then our boot id so the agent notices a reset */
        pong[4] = (uint8_t)b->cfg.boot_id; pong[5] = (uint8_t)(b->cfg.boot_id >> 8);
        pong[6] = (uint8_t)(b->cfg.boot_id >> 16); pong[7] = (uint8_t)(b->cfg.boot_id >> 24);
        kw_board_send(b, KW_MSG_PONG, pong, 8);
    }
        break;
    case KW_MSG_PONG:
        break;
    case KW_MSG_DETECTION_ACK: {
        uint32_t id;
        unsigned i;
        kw_reader_init(&r, f->payload, f->len);
        id = kw_get_u32(&r);
        if (kw_reader_done(&r) != 0) { b->stats.rx_bad_length++; send_error(b, KW_ERR_BAD_LENGTH, f->type, f->seq, "bad DETECTION_ACK"); break; }
        for (i = 0; i < KW_DETECTION_QUEUE; i++)
            if (b->pending[i].used && b->pending[i].det.event_id == id) b->pending[i].used = 0;
        break;
    }
    case KW_MSG_LED:
        if (f->len != 2) { b->stats.rx_bad_length++; send_error(b, KW_ERR_BAD_LENGTH, f->type, f->seq, "bad LED"); break; }
        if (b->leds_remote) {
            b->led_red = f->payload[0] ? 1 : 0;
            b->led_green = f->payload[1] ? 1 : 0;
            if (b->hal.led_set) b->hal.led_set(b->hal.ctx, b->led_red, b->led_green);
        }
        break;
    case KW_MSG_SET_PARAMS: {
        struct kw_params p;
        if (kw_params_decode(f->payload, f->len, &p) != 0) {
            b->stats.rx_bad_length++;
            send_ack(b, f->type, f->seq, KW_ST_BAD_PARAMS);
            send_error(b, KW_ERR_BAD_PARAMS, f->type, f->seq, "bad SET_PARAMS");
            break;
        }
        if (b->have_model && kw_detector_set_params(&b->det, &p) != 0) {
            send_ack(b, f->type, f->seq, KW_ST_BAD_PARAMS);
            send_error(b, KW_ERR_BAD_PARAMS, f->type, f->seq, "params do not fit the model");
            break;
        }
        send_ack(b, f->type, f->seq, KW_ST_OK);
        break;
    }
    case KW_MSG_SET_MODE: {
        uint8_t mode, every;
        kw_reader_init(&r, f->payload, f->len);
        mode = kw_get_u8(&r);
        every = kw_get_u8(&r);
        if (kw_reader_done(&r) != 0 || mode > KW_MODE_STREAM) {
            b->stats.rx_bad_length++;
            send_ack(b, f->type, f->seq, KW_ST_BAD_PARAMS);
            break;
        }
        if ((mode == KW_MODE_STREAM && !(b->cfg.capabilities & KW_CAP_STREAM))
            || (mode == KW_MODE_DETECT && !(b->cfg.capabilities & KW_CAP_DETECT))) {
            send_ack(b, f->type, f->seq, KW_ST_UNSUPPORTED);
            break;
        }
        if (mode != b->mode) kw_board_set_mode(b, mode);
        b->leds_remote = (mode == KW_MODE_STREAM);
        b->scores_every = every;
        send_ack(b, f->type, f->seq, KW_ST_OK);
        break;
    }
    case KW_MSG_MODEL_BEGIN: on_model_begin(b, f); break;
    case KW_MSG_MODEL_CHUNK: on_model_chunk(b, f); break;
    case KW_MSG_MODEL_END: on_model_end(b, f); break;
    case KW_MSG_ERROR:
    case KW_MSG_LOG:
        break;
    default:
        b->stats.rx_unknown_type++;
        send_error(b, KW_ERR_UNKNOWN_TYPE, f->type, f->seq, "unknown message type");
        break;
    }
}

void kw_board_rx(struct kw_board *b, const uint8_t *data, uint32_t len)
{
    uint32_t i;
    for (i = 0; i < len; i++) {
        int res = kw_decoder_feed(&b->dec, data[i]);
        switch (res) {
        case KW_RX_FRAME:
            b->stats.rx_frames++;
            dispatch(b, &b->dec.frame);
            break;
        case KW_RX_BAD_CRC:
        case KW_RX_SHORT:
            b->stats.rx_bad_crc++;
            break;
        case KW_RX_OVERSIZE:
            b->stats.rx_oversize++;
            send_error(b, KW_ERR_OVERSIZE, 0, 0, "oversize frame dropped");
            break;
        case KW_RX_BAD_VERSION:
            b->stats.rx_bad_version++;
            send_error(b, KW_ERR_BAD_VERSION, b->dec.frame.type, b->dec.frame.seq, "unsupported protocol version");
            break;
        default:
            break;
        }
    }
}
