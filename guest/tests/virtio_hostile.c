/*
 * test=virtio-hostile case=NAME: set the first virtio-blk up, submit one
 * deliberately malformed request, and report how the device reacted
 * (needs_reset / error status S / ignored). Then reset, set up again and
 * prove the device still works with one good read ("device recovered").
 */
#include "tests.h"
#include "virtio_blk.h"

#define OUTSIDE_RAM 0x7fff00000000ull

struct bufs {
    struct vblk_hdr *hdr;
    uint8_t *data;
    volatile uint8_t *status;
};

static void set(struct vring_desc *d, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
    d->addr = addr;
    d->len = len;
    d->flags = flags;
    d->next = next;
}

/* A read of sector 0 as three descriptors 0 -> 1 -> 2; cases then spoil one part. */
static void good_chain(struct virtq *q, const struct bufs *b)
{
    set(&q->desc[0], (uintptr_t)b->hdr, sizeof(*b->hdr), VRING_DESC_F_NEXT, 1);
    set(&q->desc[1], (uintptr_t)b->data, VBLK_SECTOR, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2);
    set(&q->desc[2], (uintptr_t)b->status, 1, VRING_DESC_F_WRITE, 0);
}

/* Builds the bad request on q and publishes it. False if the case is unknown/unsupported. */
static bool build(struct virtio_dev *dev, struct virtq *q, const struct bufs *b, const char *c)
{
    good_chain(q, b);
    if (strcmp(c, "oob-addr") == 0) {
        q->desc[1].addr = OUTSIDE_RAM;
    } else if (strcmp(c, "loop") == 0) {
        q->desc[1].next = 1;                                /* data descriptor chains to itself */
    } else if (strcmp(c, "long-chain") == 0) {
        for (uint16_t i = 1; i < q->size; i++)              /* 0 -> 1 -> ... -> size-1 -> 1 -> ... */
            set(&q->desc[i], (uintptr_t)b->data, 16, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT,
                (uint16_t)(i + 1 < q->size ? i + 1 : 1));
    } else if (strcmp(c, "bad-index") == 0) {
        q->desc[0].next = q->size;
    } else if (strcmp(c, "zero-len") == 0) {
        q->desc[0].len = 0;                                 /* header of length 0 */
    } else if (strcmp(c, "huge-len") == 0) {
        q->desc[1].len = 0xffffffffu;
    } else if (strcmp(c, "wrong-dir") == 0) {
        q->desc[0].flags |= VRING_DESC_F_WRITE;             /* header must be device-readable */
    } else if (strcmp(c, "avail-jump") == 0) {
        virtq_publish(q, 0);
        q->avail_idx = (uint16_t)(q->avail_idx + 3u * q->size);
        q->avail[1] = q->avail_idx;
        return true;
    } else if (strcmp(c, "indirect-oob") == 0) {
        if (!(dev->features & VIRTIO_F_INDIRECT_DESC)) {
            puts("hostile indirect-oob: INDIRECT_DESC not negotiated, cannot run");
            return false;
        }
        set(&q->desc[0], OUTSIDE_RAM, 3 * sizeof(struct vring_desc), VRING_DESC_F_INDIRECT, 0);
    } else {
        printf("hostile: unknown case '%s'\n", c);
        return false;
    }
    virtq_publish(q, 0);
    return true;
}

static uint64_t sum(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

int test_virtio_hostile(const char *cmdline)
{
    const char *c = arg_str(cmdline, "case");
    if (!c) {
        puts("hostile: case=NAME missing");
        return 1;
    }
    struct vblk *b = virtio_alloc(sizeof(*b), 64);
    if (!b || vblk_open(b, cmdline) < 0)
        return 1;
    if (strcmp(c, "indirect-oob") == 0 && !(b->want & VIRTIO_F_INDIRECT_DESC)) {
        b->want |= VIRTIO_F_INDIRECT_DESC;                  /* this case needs it */
        if (vblk_setup(b) < 0)
            return 1;
    }
    uint8_t *data = virtio_alloc(VBLK_SECTOR, 4096);
    if (vblk_request(b, VBLK_T_IN, 0, data, VBLK_SECTOR) != VBLK_S_OK) {
        puts("hostile: initial good read failed");
        return 1;
    }
    uint64_t before = sum(data, VBLK_SECTOR);

    /* Fresh ring state so the bad chain uses descriptors 0.. and the bookkeeping stays simple. */
    if (vblk_setup(b) < 0)
        return 1;
    struct virtio_dev *d = &b->dev;
    struct virtq *q = &d->vq[0];
    struct bufs bb = { b->hdr, data, b->status };
    b->hdr->type = VBLK_T_IN;
    b->hdr->sector = 0;
    *b->status = 0xee;
    uint16_t old = q->avail_idx;
    if (!build(d, q, &bb, c))
        return 1;
    printf("hostile %s: submitted (features 0x%lx, queue size %u, avail idx %u)\n", c, (unsigned long)d->features,
           q->size, q->avail_idx);
    virtq_kick(d, q, old);

    uint64_t start = rdtsc(), limit = tsc_hz() / 1000000 * d->timeout_us;
    const char *verdict = "ignored";
    for (;;) {
        uint8_t s = virtio_status(d);
        if (s & VIRTIO_S_NEEDS_RESET) {
            printf("hostile %s: needs_reset (device status 0x%x)\n", c, s);
            verdict = NULL;
            break;
        }
        uint32_t len;
        int id = virtq_get_used(q, &len);
        if (id >= 0) {
            printf("hostile %s: %s status %u (used id %d len %u, device status 0x%x)\n", c,
                   *b->status == VBLK_S_OK ? "completed ok," : "error", *b->status, id, len, s);
            verdict = NULL;
            break;
        }
        if (rdtsc() - start > limit)
            break;
        delay_us(50);
    }
    if (verdict)
        printf("hostile %s: %s (no completion, no NEEDS_RESET within %lu ms; device status 0x%x)\n", c, verdict,
               (unsigned long)(d->timeout_us / 1000), virtio_status(d));

    int err = vblk_setup(b);
    if (err < 0) {
        printf("hostile %s: re-setup failed: %s (status 0x%x)\n", c, virtio_strerror(err), virtio_status(d));
        return 1;
    }
    memset(data, 0, VBLK_SECTOR);
    int st = vblk_request(b, VBLK_T_IN, 0, data, VBLK_SECTOR);
    if (st != VBLK_S_OK || sum(data, VBLK_SECTOR) != before) {
        printf("hostile %s: read after reset failed (status %d %s)\n", c, st, st < 0 ? virtio_strerror(st) : "");
        return 1;
    }
    puts("device recovered");
    return 0;
}
