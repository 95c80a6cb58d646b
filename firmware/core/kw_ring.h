/* Audio ring buffer: single producer (microphone DMA callback) and single consumer
 * (main loop). Storage is given by the caller; capacity must be a power of two.
 * When full, new samples are dropped and counted, so the producer never waits. */
#ifndef KW_RING_H
#define KW_RING_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct kw_ring {
    volatile int16_t *data;   /* volatile: sample stores stay ordered before the head update */
    uint32_t mask;
    volatile uint32_t head;   /* written by the producer */
    volatile uint32_t tail;   /* written by the consumer */
    uint32_t dropped;         /* samples that did not fit */
};

/* Returns 0, or -1 when capacity is not a power of two >= 2. */
int kw_ring_init(struct kw_ring *r, int16_t *storage, uint32_t capacity);
uint32_t kw_ring_count(const struct kw_ring *r);
uint32_t kw_ring_space(const struct kw_ring *r);
/* Push up to n samples; returns how many were stored (the rest are counted as dropped). */
uint32_t kw_ring_write(struct kw_ring *r, const int16_t *samples, uint32_t n);
/* Pop up to n samples into out; returns how many. */
uint32_t kw_ring_read(struct kw_ring *r, int16_t *out, uint32_t n);
void kw_ring_clear(struct kw_ring *r);

#ifdef __cplusplus
}
#endif
#endif
