/*
 * Transport-independent virtio 1.x device initialisation (section 3.1.1):
 * reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK, queues, DRIVER_OK.
 */
#include "virtio.h"

int virtio_find(struct virtio_dev *d, const char *cmdline, uint16_t type, unsigned nth)
{
    memset(d, 0, sizeof(*d));
    d->timeout_us = arg_u64(cmdline, "timeout_ms", 2000) * 1000;
    virtio_pci_force_assign = arg_u64(cmdline, "pci_assign", 0) != 0;
    virtio_pci_window = arg_u64(cmdline, "pci_window", virtio_pci_window);
    const char *t = arg_str(cmdline, "transport");
    if (t && strcmp(t, "mmio") == 0)
        return virtio_mmio_find(d, cmdline, type, nth);
    if (t && strcmp(t, "pci") != 0)
        return VIRTIO_ENODEV;
    return virtio_pci_find(d, type, nth);
}

uint64_t virtio_opt_features(const char *cmdline)
{
    uint64_t f = 0;
    if (arg_u64(cmdline, "event_idx", 0))
        f |= VIRTIO_F_RING_EVENT_IDX;
    if (arg_u64(cmdline, "indirect", 0))
        f |= VIRTIO_F_INDIRECT_DESC;
    return f;
}

uint8_t virtio_status(struct virtio_dev *d)
{
    return d->ops->get_status(d);
}

int virtio_reset(struct virtio_dev *d)
{
    d->ops->set_status(d, 0);
    uint64_t start = rdtsc(), limit = tsc_hz() / 1000000 * d->timeout_us;
    while (d->ops->get_status(d) != 0) {
        if (rdtsc() - start > limit)
            return VIRTIO_ETIMEDOUT;
        cpu_relax();
    }
    return VIRTIO_OK;
}

static int setup_queue(struct virtio_dev *d, uint16_t index, uint16_t qsize)
{
    struct virtq *q = &d->vq[index];
    uint16_t max = d->ops->queue_max(d, index);
    if (max == 0)
        return VIRTIO_ENODEV;
    uint16_t size = 1;                      /* split rings: a power of two <= max and qsize */
    while ((uint32_t)size * 2 <= max && (uint32_t)size * 2 <= qsize)
        size = (uint16_t)(size * 2);
    if (!q->mem || q->mem_size < size) {
        size_t avail_off = 16u * VIRTIO_QUEUE_SIZE;
        size_t used_off = (avail_off + 6 + 2u * VIRTIO_QUEUE_SIZE + 4095) & ~(size_t)4095;
        size_t ind_off = (used_off + 6 + 8u * VIRTIO_QUEUE_SIZE + 4095) & ~(size_t)4095;
        size_t total = ind_off + 16u * VIRTIO_MAX_INDIRECT * VIRTIO_QUEUE_SIZE;
        uint8_t *m = virtio_alloc(total, 4096);
        if (!m)
            return VIRTIO_ENOSPC;
        q->mem = m;
        q->mem_size = VIRTIO_QUEUE_SIZE;
        q->desc = (struct vring_desc *)m;
        q->avail = (volatile uint16_t *)(m + avail_off);
        q->used = (volatile uint16_t *)(m + used_off);
        q->indirect = (struct vring_desc *)(m + ind_off);
    }
    q->index = index;
    q->size = size;
    virtq_init(q);
    return d->ops->queue_enable(d, q);
}

int virtio_setup(struct virtio_dev *d, uint64_t want, unsigned nqueues, uint16_t qsize)
{
    int err;
    if (nqueues > VIRTIO_MAX_QUEUES)
        return VIRTIO_ENOSPC;
    if (qsize == 0 || qsize > VIRTIO_QUEUE_SIZE)
        qsize = VIRTIO_QUEUE_SIZE;
    if ((err = virtio_reset(d)) < 0)
        return err;
    d->ops->set_status(d, VIRTIO_S_ACKNOWLEDGE);
    d->ops->set_status(d, VIRTIO_S_ACKNOWLEDGE | VIRTIO_S_DRIVER);

    uint64_t offered = d->ops->get_features(d);
    if (!(offered & VIRTIO_F_VERSION_1)) {
        err = VIRTIO_EFEATURES;
        goto fail;
    }
    d->features = VIRTIO_F_VERSION_1 | (offered & want);
    d->ops->set_features(d, d->features);
    uint8_t s = VIRTIO_S_ACKNOWLEDGE | VIRTIO_S_DRIVER | VIRTIO_S_FEATURES_OK;
    d->ops->set_status(d, s);
    if (!(d->ops->get_status(d) & VIRTIO_S_FEATURES_OK)) {
        err = VIRTIO_EFEATURES;
        goto fail;
    }
    for (unsigned i = 0; i < nqueues; i++)
        if ((err = setup_queue(d, (uint16_t)i, qsize)) < 0)
            goto fail;
    d->nqueues = nqueues;
    d->ops->set_status(d, s | VIRTIO_S_DRIVER_OK);
    if (d->ops->get_status(d) & (VIRTIO_S_NEEDS_RESET | VIRTIO_S_FAILED))
        return VIRTIO_ENEEDS_RESET;
    return VIRTIO_OK;
fail:
    d->ops->set_status(d, d->ops->get_status(d) | VIRTIO_S_FAILED);
    return err;
}

/* Device config reads; retried while config_generation changes underneath. */
static uint32_t cfg_read(struct virtio_dev *d, unsigned off, unsigned width)
{
    return d->ops->cfg_read(d, off, width);
}

uint8_t virtio_cfg8(struct virtio_dev *d, unsigned off) { return (uint8_t)cfg_read(d, off, 1); }
uint16_t virtio_cfg16(struct virtio_dev *d, unsigned off) { return (uint16_t)cfg_read(d, off, 2); }
uint32_t virtio_cfg32(struct virtio_dev *d, unsigned off) { return cfg_read(d, off, 4); }

uint64_t virtio_cfg64(struct virtio_dev *d, unsigned off)
{
    for (int tries = 0;; tries++) {
        uint8_t g = d->ops->cfg_generation(d);
        uint64_t v = cfg_read(d, off, 4) | (uint64_t)cfg_read(d, off + 4, 4) << 32;
        if (d->ops->cfg_generation(d) == g || tries > 100)
            return v;
    }
}

const char *virtio_strerror(int err)
{
    switch (err) {
    case VIRTIO_OK: return "ok";
    case VIRTIO_ENODEV: return "no such device";
    case VIRTIO_ETIMEDOUT: return "timeout";
    case VIRTIO_ENEEDS_RESET: return "device needs reset";
    case VIRTIO_EFEATURES: return "feature negotiation failed";
    case VIRTIO_ENOSPC: return "out of descriptors/memory";
    case VIRTIO_EIO: return "I/O error";
    default: return "?";
    }
}

const char *virtio_type_name(uint16_t type)
{
    switch (type) {
    case VIRTIO_ID_NET: return "net";
    case VIRTIO_ID_BLOCK: return "blk";
    case VIRTIO_ID_CONSOLE: return "console";
    case VIRTIO_ID_RNG: return "rng";
    default: return "other";
    }
}
