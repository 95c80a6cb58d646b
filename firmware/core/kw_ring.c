/* Audio ring buffer (see kw_ring.h). Indices run freely and wrap at 2^32. */
#include "kw_ring.h"

int kw_ring_init(struct kw_ring *r, int16_t *storage, uint32_t capacity)
{
    if (capacity < 2 || (capacity & (capacity - 1)) != 0) return -1;
    r->data = storage;
    r->mask = capacity - 1;
    r->head = 0;
    r->tail = 0;
    r->dropped = 0;
    return 0;
}

uint32_t kw_ring_count(const struct kw_ring *r) { return r->head - r->tail; }

uint32_t kw_ring_space(const struct kw_ring *r) { return r->mask + 1 - (r->head - r->tail); }

uint32_t kw_ring_write(struct kw_ring *r, const int16_t *samples, uint32_t n)
{
    uint32_t space = kw_ring_space(r), i, head = r->head;
    uint32_t take = n < space ? n : space;
    for (i = 0; i < take; i++) r->data[(head + i) & r->mask] = samples[i];
    r->head = head + take;
    r->dropped += n - take;
    return take;
}

uint32_t kw_ring_read(struct kw_ring *r, int16_t *out, uint32_t n)
{
    uint32_t count = kw_ring_count(r), i, tail = r->tail;
    uint32_t take = n < count ? n : count;
    for (i = 0; i < take; i++) out[i] = r->data[(tail + i) & r->mask];
    r->tail = tail + take;
    return take;
}

void kw_ring_clear(struct kw_ring *r) { r->tail = r->head; }
