/* The small hardware abstraction the portable core needs. The board glue (Gecko SDK:
 * VCOM UART, LEDs, flash staging area, TFLite Micro) fills one of these; the host shared
 * library is driven by the Python board emulator through the same table. Every function
 * must return quickly: the core never waits on hardware. */
#ifndef KW_HAL_H
#define KW_HAL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct kw_hal {
    void *ctx;
    /* Queue one complete frame for transmission. Return 0 when queued, -1 when the
     * transmit queue has no room (the core counts the frame as dropped). Never blocks. */
    int (*uart_write)(void *ctx, const uint8_t *data, uint32_t len);
    /* Milliseconds since boot. */
    uint32_t (*millis)(void *ctx);
    /* Drive the two user LEDs (BRD2601: red LED0, green LED1). */
    void (*led_set)(void *ctx, int red, int green);
    /* Model staging area in flash: erase room for `size` bytes, write, read back. 0 = ok. */
    int (*flash_erase)(void *ctx, uint32_t size);
    int (*flash_write)(void *ctx, uint32_t offset, const uint8_t *data, uint32_t len);
    int (*flash_read)(void *ctx, uint32_t offset, uint8_t *out, uint32_t len);
    /* Load the verified staged model into the inference engine. 0 = now active (the glue
     * then calls kw_board_set_model); non-zero = rejected, the old model keeps running. */
    int (*model_activate)(void *ctx, uint32_t size, uint32_t crc32);
};

#ifdef __cplusplus
}
#endif
#endif
