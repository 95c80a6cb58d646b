/* keywire board protocol: constants shared by the board firmware and the agent.
 * The byte layouts are documented in firmware/PROTOCOL.md; keep both in step. */
#ifndef KW_PROTOCOL_H
#define KW_PROTOCOL_H

#define KW_PROTOCOL_VERSION 1u

/* Frame: COBS(version u8, type u8, seq u16, payload[0..KW_MAX_PAYLOAD], crc32 u32) 0x00 */
#define KW_HEADER_SIZE 4u
#define KW_CRC_SIZE 4u
#define KW_MAX_PAYLOAD 1024u
#define KW_MAX_RAW (KW_HEADER_SIZE + KW_MAX_PAYLOAD + KW_CRC_SIZE)
/* COBS adds one byte per 254 plus one. */
#define KW_MAX_ENCODED (KW_MAX_RAW + KW_MAX_RAW / 254u + 2u)

/* Message types. */
enum kw_msg_type {
    KW_MSG_HELLO = 0x01,        /* board -> agent: identity, firmware version, capabilities */
    KW_MSG_GET_INFO = 0x02,     /* agent -> board: ask for a HELLO */
    KW_MSG_PING = 0x03,         /* either way: u32 token */
    KW_MSG_PONG = 0x04,         /* answer to PING: same token, u32 boot_id of the answering board (0: agent) */
    KW_MSG_AUDIO = 0x10,        /* board -> agent: u32 frame_index, u16 n, int16[n] */
    KW_MSG_DETECTION = 0x11,    /* board -> agent: u32 boot_id, u32 event_id, u32 time_ms, u8 class, u8 score, label */
    KW_MSG_DETECTION_ACK = 0x12,/* agent -> board: u32 event_id */
    KW_MSG_SCORES = 0x13,       /* board -> agent: u32 time_ms, u8 n, u8 scores[n] (averaged) */
    KW_MSG_LED = 0x20,          /* agent -> board sets; board -> agent reports: u8 red, u8 green */
    KW_MSG_SET_PARAMS = 0x21,   /* agent -> board: detection parameters */
    KW_MSG_SET_MODE = 0x22,     /* agent -> board: u8 mode, u8 scores_every */
    KW_MSG_ACK = 0x23,          /* board -> agent: u8 type, u16 seq, u8 status */
    KW_MSG_MODEL_BEGIN = 0x30,  /* agent -> board: u32 size, u32 crc32 */
    KW_MSG_MODEL_CHUNK = 0x31,  /* agent -> board: u32 offset, data */
    KW_MSG_MODEL_END = 0x32,    /* agent -> board: u32 size, u32 crc32 */
    KW_MSG_MODEL_ACK = 0x33,    /* board -> agent: u8 stage, u8 status, u32 next_offset */
    KW_MSG_LOG = 0x40,          /* board -> agent: u8 level, text */
    KW_MSG_ERROR = 0x41         /* either way: u8 code, u8 ref_type, u16 ref_seq, text */
};

enum kw_mode { KW_MODE_IDLE = 0, KW_MODE_DETECT = 1, KW_MODE_STREAM = 2 };

/* HELLO capability bits. */
#define KW_CAP_DETECT 0x01u
#define KW_CAP_STREAM 0x02u
#define KW_CAP_MODEL_UPDATE 0x04u
#define KW_CAP_SCORES 0x08u
#define KW_CAP_LEDS 0x10u

/* ERROR codes. */
enum kw_error_code {
    KW_ERR_NONE = 0,
    KW_ERR_UNKNOWN_TYPE = 1,
    KW_ERR_BAD_VERSION = 2,
    KW_ERR_OVERSIZE = 3,
    KW_ERR_BAD_LENGTH = 4,
    KW_ERR_MODEL_TOO_LARGE = 5,
    KW_ERR_BAD_STATE = 6,
    KW_ERR_BAD_PARAMS = 7
};

/* ACK / MODEL_ACK status codes. */
enum kw_status {
    KW_ST_OK = 0,
    KW_ST_TOO_LARGE = 1,
    KW_ST_BAD_OFFSET = 2,
    KW_ST_CRC_MISMATCH = 3,
    KW_ST_NOT_IN_TRANSFER = 4,
    KW_ST_ACTIVATE_FAILED = 5,
    KW_ST_FLASH_ERROR = 6,
    KW_ST_BAD_PARAMS = 7,
    KW_ST_UNSUPPORTED = 8
};

enum kw_model_stage { KW_STAGE_BEGIN = 0, KW_STAGE_CHUNK = 1, KW_STAGE_END = 2 };

/* Timing (milliseconds). */
#define KW_DETECTION_RETRY_MS 200u   /* board resends an unacknowledged DETECTION */
#define KW_DETECTION_MAX_TRIES 25u   /* then gives it up (5 s) */
#define KW_DETECTION_QUEUE 8u        /* unacknowledged detections kept */
#define KW_AUDIO_FRAME_SAMPLES 320u  /* 20 ms at 16 kHz per AUDIO frame */
#define KW_MAX_CLASSES 32u
#define KW_MAX_LABEL 31u

#endif
