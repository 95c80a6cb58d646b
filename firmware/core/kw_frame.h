/* Frame codec: CRC-32, COBS, frame encoder and a byte-at-a-time resynchronising decoder.
 * No heap, no globals; the decoder owns a fixed buffer sized for the largest frame. */
#ifndef KW_FRAME_H
#define KW_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "kw_protocol.h"

#ifdef __cplusplus
extern "C" {
#endif

/* CRC-32 (IEEE 802.3, reflected, init/xorout 0xFFFFFFFF; equals zlib.crc32). `crc` is the
 * previous result (0 to start) so a long buffer can be checked in pieces. */
uint32_t kw_crc32(uint32_t crc, const uint8_t *data, size_t len);

/* COBS encode `len` bytes into `out` (capacity `cap`); returns the encoded length
 * (no delimiter) or 0 when `out` is too small. */
size_t kw_cobs_encode(const uint8_t *in, size_t len, uint8_t *out, size_t cap);

/* COBS decode; returns the decoded length, or -1 for malformed input or overflow. */
long kw_cobs_decode(const uint8_t *in, size_t len, uint8_t *out, size_t cap);

/* Build a complete wire frame (COBS + trailing 0x00) into `out`; returns bytes or 0. */
size_t kw_frame_encode(uint8_t type, uint16_t seq, const uint8_t *payload, size_t len,
                       uint8_t *out, size_t cap);

/* Results of feeding one byte to the decoder. */
enum kw_rx_result {
    KW_RX_NONE = 0,      /* need more bytes */
    KW_RX_FRAME = 1,     /* a valid frame is in decoder.frame */
    KW_RX_BAD_CRC = 2,   /* corrupt frame (COBS or CRC) dropped */
    KW_RX_SHORT = 3,     /* too short to be a frame */
    KW_RX_OVERSIZE = 4,  /* longer than KW_MAX_ENCODED; dropped up to the next delimiter */
    KW_RX_BAD_VERSION = 5/* CRC valid but another protocol version; header fields are set */
};

struct kw_frame {
    uint8_t version;
    uint8_t type;
    uint16_t seq;
    uint16_t len;
    uint8_t payload[KW_MAX_PAYLOAD];
};

struct kw_decoder_stats {
    uint32_t frames;
    uint32_t bad_crc;
    uint32_t short_frames;
    uint32_t oversize;
    uint32_t bad_version;
    uint32_t bytes;
};

struct kw_decoder {
    uint8_t buf[KW_MAX_ENCODED];
    uint8_t raw[KW_MAX_RAW];
    size_t n;
    int overflow;
    struct kw_frame frame;
    struct kw_decoder_stats stats;
};

void kw_decoder_init(struct kw_decoder *d);
/* Feed one received byte; see enum kw_rx_result. */
int kw_decoder_feed(struct kw_decoder *d, uint8_t byte);

#ifdef __cplusplus
}
#endif
#endif
