/*
 * Split virtqueues (virtio 1.x section 2.7), driver side, polled.
 * Descriptors are handed out from a free list linked through desc[].next.
 * x86 is TSO: the only reordering to prevent is the compiler's, plus
 * store->load around the notification-suppression check (mfence).
 */
#include "virtio.h"

#define AVAIL_FLAGS     0
#define AVAIL_IDX       1
#define AVAIL_RING(i)   (2 + (i))
#define USED_IDX        1

static inline volatile struct vring_used_elem *used_elem(struct virtq *q, uint16_t i)
{
    return (volatile struct vring_used_elem *)((uintptr_t)q->used + 4 + 8u * i);
}

void virtq_init(struct virtq *q)
{
    memset(q->desc, 0, 16u * q->size);
    for (uint16_t i = 0; i < q->size; i++)
        q->desc[i].next = (uint16_t)(i + 1 < q->size ? i + 1 : 0);
    for (unsigned i = 0; i < 3u + q->size; i++)
        q->avail[i] = 0;
    q->avail[AVAIL_FLAGS] = VRING_AVAIL_F_NO_INTERRUPT;     /* we poll */
    q->used[0] = 0;
    q->used[USED_IDX] = 0;
    q->avail_idx = 0;
    q->last_used = 0;
    q->free_head = 0;
    q->num_free = q->size;
    memset(q->chain_len, 0, sizeof(q->chain_len));
}

int virtq_add(struct virtq *q, const struct virtio_buf *bufs, unsigned n, bool use_indirect)
{
    if (n == 0)
        return VIRTIO_EIO;
    if (use_indirect && n > 1 && n <= VIRTIO_MAX_INDIRECT && q->indirect) {
        if (q->num_free < 1)
            return VIRTIO_ENOSPC;
        uint16_t head = q->free_head;
        struct vring_desc *t = q->indirect + (size_t)head * VIRTIO_MAX_INDIRECT;
        for (unsigned i = 0; i < n; i++) {
            t[i].addr = bufs[i].addr;
            t[i].len = bufs[i].len;
            t[i].flags = (uint16_t)((bufs[i].write ? VRING_DESC_F_WRITE : 0) | (i + 1 < n ? VRING_DESC_F_NEXT : 0));
            t[i].next = (uint16_t)(i + 1);
        }
        struct vring_desc *d = &q->desc[head];
        q->free_head = d->next;
        d->addr = (uint64_t)(uintptr_t)t;
        d->len = (uint32_t)(n * sizeof(*t));
        d->flags = VRING_DESC_F_INDIRECT;
        q->num_free--;
        q->chain_len[head] = 1;
        virtq_publish(q, head);
        return head;
    }
    if (q->num_free < n)
        return VIRTIO_ENOSPC;
    uint16_t head = q->free_head, i = head, last = head;
    for (unsigned k = 0; k < n; k++) {
        struct vring_desc *d = &q->desc[i];
        d->addr = bufs[k].addr;
        d->len = bufs[k].len;
        d->flags = (uint16_t)((bufs[k].write ? VRING_DESC_F_WRITE : 0) | (k + 1 < n ? VRING_DESC_F_NEXT : 0));
        last = i;
        i = d->next;
    }
    q->free_head = q->desc[last].next;
    q->num_free = (uint16_t)(q->num_free - n);
    q->chain_len[head] = (uint16_t)n;
    virtq_publish(q, head);
    return head;
}

void virtq_publish(struct virtq *q, uint16_t head)
{
    q->avail[AVAIL_RING(q->avail_idx % q->size)] = head;
    virtio_barrier();                       /* ring entry before idx */
    q->avail_idx++;
    q->avail[AVAIL_IDX] = q->avail_idx;
}

void virtq_kick(struct virtio_dev *d, struct virtq *q, uint16_t old_avail)
{
    virtio_mb();                            /* idx store visible before reading avail_event */
    if (d->features & VIRTIO_F_RING_EVENT_IDX) {
        uint16_t event = q->used[2 + 4u * q->size];
        uint16_t new = q->avail_idx;
        if ((uint16_t)(new - event - 1) >= (uint16_t)(new - old_avail))
            return;
    } else if (q->used[0] & 1) {            /* VRING_USED_F_NO_NOTIFY */
        return;
    }
    d->ops->notify(d, q);
}

int virtq_get_used(struct virtq *q, uint32_t *len)
{
    if (q->used[USED_IDX] == q->last_used)
        return -1;
    virtio_barrier();                       /* idx before the element */
    volatile struct vring_used_elem *e = used_elem(q, q->last_used % q->size);
    uint32_t id = e->id, l = e->len;
    q->last_used++;
    if (len)
        *len = l;
    if (id < q->size && q->chain_len[id]) {     /* give the chain back to the free list */
        uint16_t i = (uint16_t)id, n = q->chain_len[id];
        for (uint16_t k = 1; k < n; k++)
            i = q->desc[i].next;
        q->desc[i].next = q->free_head;
        q->free_head = (uint16_t)id;
        q->num_free = (uint16_t)(q->num_free + n);
        q->chain_len[id] = 0;
    }
    /* With EVENT_IDX, used_event tells the device when we would want an interrupt; we never do. */
    q->avail[AVAIL_RING(q->size)] = (uint16_t)(q->last_used - 1);
    return (int)id;
}

int virtq_poll(struct virtio_dev *d, struct virtq *q, uint64_t timeout_us, uint32_t *len)
{
    uint64_t start = rdtsc(), limit = tsc_hz() / 1000000 * timeout_us;
    for (unsigned spin = 0;; spin++) {
        int id = virtq_get_used(q, len);
        if (id >= 0)
            return id;
        if ((spin & 1023) == 1023 && (virtio_status(d) & (VIRTIO_S_NEEDS_RESET | VIRTIO_S_FAILED)))
            return VIRTIO_ENEEDS_RESET;
        if (rdtsc() - start > limit)
            return VIRTIO_ETIMEDOUT;
        cpu_relax();
    }
}

int virtio_transfer(struct virtio_dev *d, struct virtq *q, const struct virtio_buf *bufs, unsigned n)
{
    uint16_t old = q->avail_idx;
    bool indirect = (d->features & VIRTIO_F_INDIRECT_DESC) != 0;
    int head = virtq_add(q, bufs, n, indirect);
    if (head < 0)
        return head;
    virtq_kick(d, q, old);
    for (;;) {
        uint32_t len = 0;
        int id = virtq_poll(d, q, d->timeout_us, &len);
        if (id < 0)
            return id;
        if (id == head)
            return (int)len;
        /* someone else's completion (not expected in these single-request tests): skip it */
    }
}
