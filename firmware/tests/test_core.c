/* Unit tests of the portable core (host build): codec, messages, ring, detector, board. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kw_board.h"

static int failures = 0, checks = 0;
#define CHECK(cond) do { checks++; if (!(cond)) { failures++; printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); } } while (0)

static uint32_t rng_state = 12345u;
static uint32_t rnd(void) { rng_state = rng_state * 1103515245u + 12345u; return rng_state >> 8; }

static void test_crc(void)
{
    CHECK(kw_crc32(0, (const uint8_t *)"123456789", 9) == 0xCBF43926u);
    CHECK(kw_crc32(kw_crc32(0, (const uint8_t *)"1234", 4), (const uint8_t *)"56789", 5) == 0xCBF43926u);
}

static void test_cobs(void)
{
    uint8_t in[700], enc[720], dec[720];
    size_t len, n;
    long m;
    int trial;
    const uint8_t zeros[3] = {0, 0, 0};
    n = kw_cobs_encode(zeros, 3, enc, sizeof(enc));
    CHECK(n == 4 && enc[0] == 1 && enc[1] == 1 && enc[2] == 1 && enc[3] == 1);
    for (trial = 0; trial < 500; trial++) {
        size_t i;
        len = rnd() % sizeof(in);
        for (i = 0; i < len; i++) in[i] = (uint8_t)(trial % 3 == 0 ? (rnd() % 255) + 1 : rnd());
        n = kw_cobs_encode(in, len, enc, sizeof(enc));
        CHECK(n > 0);
        CHECK(memchr(enc, 0, n) == NULL);
        m = kw_cobs_decode(enc, n, dec, sizeof(dec));
        CHECK(m == (long)len && memcmp(in, dec, len) == 0);
    }
    CHECK(kw_cobs_encode(in, 100, enc, 50) == 0);
}

static int feed_all(struct kw_decoder *d, const uint8_t *buf, size_t n, int *frames)
{
    size_t i;
    int last = KW_RX_NONE;
    for (i = 0; i < n; i++) {
        int r = kw_decoder_feed(d, buf[i]);
        if (r == KW_RX_FRAME) (*frames)++;
        if (r != KW_RX_NONE) last = r;
    }
    return last;
}

static void test_frames(void)
{
    static struct kw_decoder d;
    uint8_t payload[KW_MAX_PAYLOAD], wire[KW_MAX_ENCODED + 8], garbage[3000];
    size_t n, i;
    int frames = 0;
    for (i = 0; i < sizeof(payload); i++) payload[i] = (uint8_t)(i * 7);
    kw_decoder_init(&d);
    n = kw_frame_encode(KW_MSG_AUDIO, 0xBEEF, payload, sizeof(payload), wire, sizeof(wire));
    CHECK(n > 0 && n <= KW_MAX_ENCODED + 1 && wire[n - 1] == 0);
    CHECK(feed_all(&d, wire, n, &frames) == KW_RX_FRAME && frames == 1);
    CHECK(d.frame.type == KW_MSG_AUDIO && d.frame.seq == 0xBEEF && d.frame.len == KW_MAX_PAYLOAD);
    CHECK(memcmp(d.frame.payload, payload, KW_MAX_PAYLOAD) == 0);
    CHECK(kw_frame_encode(KW_MSG_AUDIO, 0, payload, KW_MAX_PAYLOAD + 1, wire, sizeof(wire)) == 0);

    /* garbage (with and without zeros), then a good frame: resynchronised */
    for (i = 0; i < sizeof(garbage); i++) garbage[i] = (uint8_t)(rnd() | 1u);
    frames = 0;
    feed_all(&d, garbage, sizeof(garbage), &frames); /* no delimiter: overflows */
    CHECK(kw_decoder_feed(&d, 0) == KW_RX_OVERSIZE);
    CHECK(d.stats.oversize == 1);
    for (i = 0; i < 200; i++) garbage[i] = (uint8_t)rnd();
    feed_all(&d, garbage, 200, &frames);
    n = kw_frame_encode(KW_MSG_PING, 7, (const uint8_t *)"\x01\x02\x03\x04", 4, wire + 1, sizeof(wire) - 1);
    wire[0] = 0;
    CHECK(feed_all(&d, wire, n + 1, &frames) == KW_RX_FRAME);
    CHECK(d.frame.type == KW_MSG_PING && d.frame.seq == 7 && d.frame.len == 4);

    /* every single-bit flip is caught by the CRC (or breaks the COBS structure) */
    n = kw_frame_encode(KW_MSG_PING, 9, (const uint8_t *)"\x0a\x0b\x0c\x0d", 4, wire, sizeof(wire));
    for (i = 0; i < (n - 1) * 8; i++) {
        uint8_t copy[64];
        int f = 0;
        memcpy(copy, wire, n);
        copy[i / 8] ^= (uint8_t)(1u << (i % 8));
        feed_all(&d, copy, n, &f);
        CHECK(f == 0);
        kw_decoder_feed(&d, 0);
    }

    /* another protocol version with a valid CRC is reported as such */
    {
        uint8_t raw[12] = {2, KW_MSG_PING, 1, 0, 1, 2, 3, 4};
        uint32_t crc = kw_crc32(0, raw, 8);
        uint8_t enc[20];
        raw[8] = (uint8_t)crc; raw[9] = (uint8_t)(crc >> 8); raw[10] = (uint8_t)(crc >> 16); raw[11] = (uint8_t)(crc >> 24);
        n = kw_cobs_encode(raw, 12, enc, sizeof(enc));
        enc[n++] = 0;
        frames = 0;
        CHECK(feed_all(&d, enc, n, &frames) == KW_RX_BAD_VERSION && frames == 0);
        CHECK(d.frame.type == KW_MSG_PING && d.frame.version == 2);
    }
}

static void test_messages(void)
{
    struct kw_hello h, h2;
    struct kw_detection dt, dt2;
    struct kw_params p, p2;
    uint8_t buf[256];
    size_t n;
    memset(&h, 0, sizeof(h));
    h.protocol_version = 1; h.fw_major = 0; h.fw_minor = 1; h.fw_patch = 2;
    h.capabilities = 0x1F; h.boot_id = 0xA1B2C3D4u; h.flash_capacity = 393216; h.sample_rate = 16000;
    h.mode = KW_MODE_STREAM;
    strcpy(h.board_id, "brd2601-0001");
    strcpy(h.model_name, "on_off");
    h.model_size = 12345; h.model_crc32 = 0xDEADBEEFu;
    n = kw_hello_encode(&h, buf, sizeof(buf));
    CHECK(n == 4 + 4 + 4 + 4 + 2 + 1 + 1 + 12 + 1 + 6 + 4 + 4);
    memset(&h2, 0xAA, sizeof(h2));
    CHECK(kw_hello_decode(buf, n, &h2) == 0);
    CHECK(h2.boot_id == h.boot_id && strcmp(h2.board_id, h.board_id) == 0 && h2.model_crc32 == h.model_crc32);
    CHECK(kw_hello_decode(buf, n - 1, &h2) != 0);

    memset(&dt, 0, sizeof(dt));
    dt.boot_id = 0xB007; dt.event_id = 42; dt.time_ms = 123456; dt.class_index = 1; dt.score = 201;
    strcpy(dt.label, "off");
    n = kw_detection_encode(&dt, buf, sizeof(buf));
    CHECK(n == 18);
    CHECK(kw_detection_decode(buf, n, &dt2) == 0 && dt2.boot_id == 0xB007 && dt2.event_id == 42 && dt2.score == 201 && strcmp(dt2.label, "off") == 0);
    buf[14] = 200; /* label length beyond the payload */
    CHECK(kw_detection_decode(buf, n, &dt2) != 0);

    memset(&p, 0, sizeof(p));
    p.average_window_duration_ms = 1000; p.suppression_ms = 1500; p.latency_ms = 100;
    p.detection_threshold = 185; p.minimum_count = 3; p.n_thresholds = 3;
    p.thresholds[0] = 200; p.thresholds[1] = 210; p.thresholds[2] = 255;
    n = kw_params_encode(&p, buf, sizeof(buf));
    CHECK(n == 12);
    CHECK(kw_params_decode(buf, n, &p2) == 0 && p2.thresholds[1] == 210 && p2.minimum_count == 3);
    CHECK(kw_params_decode(buf, n + 1, &p2) != 0);
}

static void test_ring(void)
{
    int16_t storage[8], out[8], in[12];
    struct kw_ring r;
    int i;
    for (i = 0; i < 12; i++) in[i] = (int16_t)(i - 6);
    CHECK(kw_ring_init(&r, storage, 6) != 0);
    CHECK(kw_ring_init(&r, storage, 8) == 0);
    CHECK(kw_ring_write(&r, in, 5) == 5);
    CHECK(kw_ring_read(&r, out, 3) == 3 && out[0] == -6 && out[2] == -4);
    CHECK(kw_ring_write(&r, in + 5, 7) == 6 && r.dropped == 1);
    CHECK(kw_ring_count(&r) == 8 && kw_ring_space(&r) == 0);
    CHECK(kw_ring_read(&r, out, 8) == 8 && out[0] == -3 && out[7] == 4);
    CHECK(kw_ring_read(&r, out, 1) == 0);
}

static void test_detector(void)
{
    static struct kw_detector d;
    struct kw_params p;
    const char *labels[3] = {"on", "off", "_unknown_"};
    uint8_t hi_on[3] = {250, 2, 3}, low[3] = {10, 10, 235};
    struct kw_detect_result r;
    int t, detections = 0;
    memset(&p, 0, sizeof(p));
    p.average_window_duration_ms = 500; p.suppression_ms = 1500; p.latency_ms = 100;
    p.detection_threshold = 185; p.minimum_count = 3;
    CHECK(kw_detector_init(&d, &p, labels, 3) == 0);
    r = kw_detector_process(&d, 0, hi_on);
    CHECK(r.class_index == -1 && r.score == 0 && !r.detected);
    r = kw_detector_process(&d, 100, hi_on);
    CHECK(!r.detected);
    r = kw_detector_process(&d, 200, hi_on);
    CHECK(r.detected && r.class_index == 0 && r.score == 250);
    for (t = 300; t <= 1700; t += 100) detections += kw_detector_process(&d, t, hi_on).detected;
    CHECK(detections == 0); /* suppressed: 1700 - 200 is not > 1500 */
    CHECK(kw_detector_process(&d, 1800, hi_on).detected == 1);
    /* '_' labels never fire */
    kw_detector_reset(&d);
    for (t = 0; t < 1000; t += 100) CHECK(!kw_detector_process(&d, t, low).detected);
    /* 255 never passes a threshold of 255 */
    p.n_thresholds = 3; p.thresholds[0] = 255; p.thresholds[1] = 255; p.thresholds[2] = 255;
    CHECK(kw_detector_set_params(&d, &p) == 0);
    {
        uint8_t max_on[3] = {255, 0, 0};
        for (t = 2000; t < 3000; t += 100) CHECK(!kw_detector_process(&d, t, max_on).detected);
    }
    p.n_thresholds = 2;
    CHECK(kw_detector_set_params(&d, &p) != 0);
}

/* ---- board with an in-memory HAL ---- */
struct fake {
    uint8_t wire[65536];
    size_t wn;
    uint32_t t;
    uint8_t flash[4096];
    int activated, reject;
    int red, green;
};

static int f_write(void *c, const uint8_t *d, uint32_t n)
{
    struct fake *f = c;
    if (f->wn + n > sizeof(f->wire)) return -1;
    memcpy(f->wire + f->wn, d, n);
    f->wn += n;
    return 0;
}
static uint32_t f_millis(void *c) { return ((struct fake *)c)->t; }
static void f_led(void *c, int r, int g) { ((struct fake *)c)->red = r; ((struct fake *)c)->green = g; }
static int f_erase(void *c, uint32_t size) { memset(((struct fake *)c)->flash, 0xFF, size); return 0; }
static int f_fwrite(void *c, uint32_t off, const uint8_t *d, uint32_t n) { memcpy(((struct fake *)c)->flash + off, d, n); return 0; }
static int f_fread(void *c, uint32_t off, uint8_t *o, uint32_t n) { memcpy(o, ((struct fake *)c)->flash + off, n); return 0; }
static int f_activate(void *c, uint32_t size, uint32_t crc)
{
    struct fake *f = c;
    (void)size; (void)crc;
    if (f->reject) return -1;
    f->activated++;
    return 0;
}

/* Decode everything the board wrote; returns the count of frames of `type` and the last one. */
static int frames_of(struct fake *f, uint8_t type, struct kw_frame *last)
{
    static struct kw_decoder d;
    size_t i;
    int count = 0;
    kw_decoder_init(&d);
    for (i = 0; i < f->wn; i++)
        if (kw_decoder_feed(&d, f->wire[i]) == KW_RX_FRAME && d.frame.type == type) {
            count++;
            if (last) *last = d.frame;
        }
    return count;
}

static void send_to(struct kw_board *b, uint8_t type, const uint8_t *payload, size_t len)
{
    uint8_t wire[KW_MAX_ENCODED + 1];
    size_t n = kw_frame_encode(type, 1, payload, len, wire, sizeof(wire));
    kw_board_rx(b, wire, (uint32_t)n);
}

static void test_board(void)
{
    static struct kw_board b;
    static struct fake f;
    static int16_t ring[1024];
    static struct kw_frame fr;
    struct kw_hal hal = {&f, f_write, f_millis, f_led, f_erase, f_fwrite, f_fread, f_activate};
    struct kw_board_config cfg;
    struct kw_params p;
    const char *labels[2] = {"go", "_silence_"};
    uint8_t model[1000], buf[600];
    uint32_t crc, off;
    uint8_t hi[2] = {240, 10};
    int i;
    memset(&cfg, 0, sizeof(cfg));
    strcpy(cfg.board_id, "test-board");
    cfg.boot_id = 77; cfg.flash_capacity = sizeof(f.flash); cfg.sample_rate = 16000;
    cfg.capabilities = KW_CAP_DETECT | KW_CAP_STREAM | KW_CAP_MODEL_UPDATE | KW_CAP_SCORES | KW_CAP_LEDS;
    memset(&p, 0, sizeof(p));
    p.average_window_duration_ms = 1000; p.suppression_ms = 1500; p.latency_ms = 100;
    p.detection_threshold = 185; p.minimum_count = 1;
    kw_board_init(&b, &hal, &cfg, ring, 1024);
    CHECK(kw_board_set_model(&b, "m1", labels, 2, 10, 1, &p) == 0);
    kw_board_start(&b);
    CHECK(frames_of(&f, KW_MSG_HELLO, &fr) == 1);

    /* a detection is sent, resent until acknowledged, then no more */
    kw_board_scores(&b, hi);
    CHECK(frames_of(&f, KW_MSG_DETECTION, NULL) == 1 && f.red == 1);
    f.t = 250; kw_board_poll(&b);
    CHECK(frames_of(&f, KW_MSG_DETECTION, &fr) == 2);
    buf[0] = 1; buf[1] = 0; buf[2] = 0; buf[3] = 0;
    send_to(&b, KW_MSG_DETECTION_ACK, buf, 4);
    f.t = 1200; kw_board_poll(&b);
    CHECK(frames_of(&f, KW_MSG_DETECTION, NULL) == 2 && f.red == 0);

    /* unknown type and bad payloads are answered with ERROR */
    send_to(&b, 0x77, buf, 3);
    CHECK(frames_of(&f, KW_MSG_ERROR, &fr) == 1 && fr.payload[0] == KW_ERR_UNKNOWN_TYPE && fr.payload[1] == 0x77);
    send_to(&b, KW_MSG_PING, buf, 3);
    CHECK(frames_of(&f, KW_MSG_ERROR, &fr) == 2 && fr.payload[0] == KW_ERR_BAD_LENGTH);

    /* model transfer: too large, then a good one with a resent chunk, then a corrupt one */
    buf[0] = 0x00; buf[1] = 0x00; buf[2] = 0x01; buf[3] = 0x00; buf[4] = buf[5] = buf[6] = buf[7] = 0;
    send_to(&b, KW_MSG_MODEL_BEGIN, buf, 8);
    CHECK(frames_of(&f, KW_MSG_MODEL_ACK, &fr) == 1 && fr.payload[1] == KW_ST_TOO_LARGE);
    CHECK(frames_of(&f, KW_MSG_ERROR, &fr) == 3 && fr.payload[0] == KW_ERR_MODEL_TOO_LARGE);
    for (i = 0; i < 1000; i++) model[i] = (uint8_t)rnd();
    crc = kw_crc32(0, model, sizeof(model));
    {
        struct kw_writer w;
        kw_writer_init(&w, buf, sizeof(buf)); kw_put_u32(&w, 1000); kw_put_u32(&w, crc);
        send_to(&b, KW_MSG_MODEL_BEGIN, buf, w.n);
        for (off = 0; off < 1000; off += 300) {
            uint32_t n = 1000 - off < 300 ? 1000 - off : 300;
            kw_writer_init(&w, buf, sizeof(buf)); kw_put_u32(&w, off); kw_put_bytes(&w, model + off, n);
            send_to(&b, KW_MSG_MODEL_CHUNK, buf, w.n);
            if (off == 300) send_to(&b, KW_MSG_MODEL_CHUNK, buf, w.n); /* duplicate */
        }
        CHECK(frames_of(&f, KW_MSG_MODEL_ACK, &fr) == 7 && fr.payload[1] == KW_ST_OK && fr.payload[2] == 0xE8);
        kw_writer_init(&w, buf, sizeof(buf)); kw_put_u32(&w, 1000); kw_put_u32(&w, crc);
        send_to(&b, KW_MSG_MODEL_END, buf, w.n);
        CHECK(frames_of(&f, KW_MSG_MODEL_ACK, &fr) == 8 && fr.payload[0] == KW_STAGE_END && fr.payload[1] == KW_ST_OK);
        CHECK(f.activated == 1 && memcmp(f.flash, model, 1000) == 0);
        /* corrupt transfer: CRC announced does not match the data */
        kw_writer_init(&w, buf, sizeof(buf)); kw_put_u32(&w, 10); kw_put_u32(&w, 1234);
        send_to(&b, KW_MSG_MODEL_BEGIN, buf, w.n);
        kw_writer_init(&w, buf, sizeof(buf)); kw_put_u32(&w, 0); kw_put_bytes(&w, model, 10);
        send_to(&b, KW_MSG_MODEL_CHUNK, buf, w.n);
        kw_writer_init(&w, buf, sizeof(buf)); kw_put_u32(&w, 10); kw_put_u32(&w, 1234);
        send_to(&b, KW_MSG_MODEL_END, buf, w.n);
        CHECK(frames_of(&f, KW_MSG_MODEL_ACK, &fr) == 11 && fr.payload[1] == KW_ST_CRC_MISMATCH);
        CHECK(f.activated == 1);
    }

    /* stream mode: audio frames with consecutive indices */
    buf[0] = KW_MODE_STREAM; buf[1] = 0;
    send_to(&b, KW_MSG_SET_MODE, buf, 2);
    CHECK(frames_of(&f, KW_MSG_ACK, &fr) == 1 && fr.payload[0] == KW_MSG_SET_MODE && fr.payload[3] == KW_ST_OK);
    {
        int16_t s[700];
        for (i = 0; i < 700; i++) s[i] = (int16_t)(i * 40 - 14000);
        CHECK(kw_board_audio(&b, s, 700) == 700);
        kw_board_poll(&b);
        CHECK(frames_of(&f, KW_MSG_AUDIO, &fr) == 2);
        CHECK(fr.payload[0] == 1 && fr.len == 6 + 2 * KW_AUDIO_FRAME_SAMPLES);
        CHECK((int16_t)(fr.payload[6] | (fr.payload[7] << 8)) == (int16_t)(320 * 40 - 14000));
    }
}

/* Shared parity vectors (tests/detect_vectors.txt, written from the Python detector). */
static int parse_list(char *text, uint8_t *out, int max)
{
    int n = 0;
    char *tok = strtok(text, ",");
    while (tok && n < max) {
        out[n++] = (uint8_t)atoi(tok);
        tok = strtok(NULL, ",");
    }
    return n;
}

static void test_vectors(const char *path)
{
    static struct kw_detector d;
    FILE *f = fopen(path, "r");
    char line[1024];
    int steps = 0, cases = 0, mismatches = 0;
    CHECK(f != NULL);
    if (!f) return;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "case ", 5) == 0) {
            int n, window, suppression, min_count, threshold;
            char ignore_s[128], tl_s[256];
            uint8_t ignore[KW_MAX_CLASSES];
            struct kw_params p;
            memset(&p, 0, sizeof(p));
            CHECK(sscanf(line + 5, "%d %d %d %d %d %127s %255s", &n, &window, &suppression, &min_count, &threshold,
                         ignore_s, tl_s) == 7);
            p.average_window_duration_ms = (uint16_t)window;
            p.suppression_ms = (uint16_t)suppression;
            p.minimum_count = (uint8_t)min_count;
            p.detection_threshold = (uint8_t)threshold;
            p.latency_ms = 100;
            parse_list(ignore_s, ignore, KW_MAX_CLASSES);
            if (strcmp(tl_s, "-") != 0) p.n_thresholds = (uint8_t)parse_list(tl_s, p.thresholds, KW_MAX_CLASSES);
            CHECK(kw_detector_init_flags(&d, &p, ignore, (uint8_t)n) == 0);
            cases++;
        } else if (line[0] == 's' && line[1] == ' ') {
            long long now;
            char scores_s[512];
            int cls, score, detected;
            uint8_t scores[KW_MAX_CLASSES];
            struct kw_detect_result r;
            CHECK(sscanf(line + 2, "%lld %511s %d %d %d", &now, scores_s, &cls, &score, &detected) == 5);
            parse_list(scores_s, scores, KW_MAX_CLASSES);
            r = kw_detector_process(&d, (int64_t)now, scores);
            if (r.class_index != cls || r.score != score || r.detected != detected) {
                if (mismatches++ < 5)
                    printf("vector mismatch at case %d t=%lld: C (%d,%d,%d) Python (%d,%d,%d)\n", cases, now,
                           r.class_index, r.score, r.detected, cls, score, detected);
            }
            steps++;
        }
    }
    fclose(f);
    checks++;
    if (mismatches) failures++;
    printf("parity vectors: %d cases, %d steps, %d mismatches\n", cases, steps, mismatches);
}

int main(int argc, char **argv)
{
    test_crc();
    test_cobs();
    test_frames();
    test_messages();
    test_ring();
    test_detector();
    test_board();
    if (argc > 1) test_vectors(argv[1]);
    printf("%d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
