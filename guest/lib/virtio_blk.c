/* virtio-blk requests (virtio 1.x section 5.2): header, data segments, status byte. */
#include "virtio_blk.h"

#define MAX_SEGS 32

int vblk_setup(struct vblk *b)
{
    struct virtio_dev *d = &b->dev;
    uint64_t want = b->want | VBLK_F_SIZE_MAX | VBLK_F_SEG_MAX | VBLK_F_RO | VBLK_F_BLK_SIZE | VBLK_F_FLUSH;
    int err = virtio_setup(d, want, 1, 0);
    if (err < 0)
        return err;
    b->capacity = virtio_cfg64(d, 0);
    b->size_max = (d->features & VBLK_F_SIZE_MAX) ? virtio_cfg32(d, 8) : 0;
    b->seg_max = (d->features & VBLK_F_SEG_MAX) ? virtio_cfg32(d, 12) : 0;
    b->blk_size = (d->features & VBLK_F_BLK_SIZE) ? virtio_cfg32(d, 20) : VBLK_SECTOR;
    if (!b->hdr) {
        b->hdr = virtio_alloc(sizeof(*b->hdr) + 16, 64);
        if (!b->hdr)
            return VIRTIO_ENOSPC;
        b->status = (volatile uint8_t *)(b->hdr + 1);
    }
    return VIRTIO_OK;
}

int vblk_open(struct vblk *b, const char *cmdline)
{
    memset(b, 0, sizeof(*b));
    int err = virtio_find(&b->dev, cmdline, VIRTIO_ID_BLOCK, 0);
    if (err < 0) {
        printf("virtio-blk: no device found (%s)\n", virtio_strerror(err));
        return err;
    }
    b->want = virtio_opt_features(cmdline);
    err = vblk_setup(b);
    if (err < 0) {
        printf("virtio-blk: %s: setup failed: %s (status 0x%x)\n", b->dev.where, virtio_strerror(err),
               virtio_status(&b->dev));
        return err;
    }
    printf("virtio-blk: %s features 0x%lx queue %u capacity %lu sectors (%lu MiB) blk_size %u%s%s\n",
           b->dev.where, (unsigned long)b->dev.features, b->dev.vq[0].size, (unsigned long)b->capacity,
           (unsigned long)(b->capacity >> 11), b->blk_size, (b->dev.features & VBLK_F_RO) ? " ro" : "",
           (b->dev.features & VBLK_F_FLUSH) ? " flush" : "");
    return VIRTIO_OK;
}

#define SLOT_BYTES 32                       /* header (16) + status, 32-byte aligned */

/* The descriptors of one request: header, data segments, status. Returns how many or VIRTIO_ENOSPC. */
static int build(struct vblk *b, struct vblk_hdr *hdr, volatile uint8_t *status, uint32_t type, uint64_t sector,
                 void *buf, uint32_t len, struct virtio_buf *bufs)
{
    unsigned n = 0;
    hdr->type = type;
    hdr->reserved = 0;
    hdr->sector = sector;
    *status = 0xff;                         /* anything the device does not overwrite shows */
    bufs[n++] = (struct virtio_buf){ (uintptr_t)hdr, sizeof(*hdr), false };

    uint32_t seg = b->size_max ? b->size_max : len;
    for (uint32_t off = 0; off < len; off += seg) {
        if (n > MAX_SEGS || (b->seg_max && n > b->seg_max))
            return VIRTIO_ENOSPC;
        uint32_t l = len - off < seg ? len - off : seg;
        bufs[n++] = (struct virtio_buf){ (uintptr_t)buf + off, l, type != VBLK_T_OUT };
    }
    bufs[n++] = (struct virtio_buf){ (uintptr_t)status, 1, true };
    return (int)n;
}

int vblk_request(struct vblk *b, uint32_t type, uint64_t sector, void *buf, uint32_t len)
{
    struct virtio_buf bufs[MAX_SEGS + 2];
    int n = build(b, b->hdr, b->status, type, sector, buf, len, bufs);
    if (n < 0)
        return n;
    int r = virtio_transfer(&b->dev, &b->dev.vq[0], bufs, (unsigned)n);
    if (r < 0)
        return r;
    return *b->status;
}

int vblk_submit(struct vblk *b, unsigned slot, uint32_t type, uint64_t sector, void *buf, uint32_t len)
{
    if (slot >= VBLK_MAX_QD)
        return VIRTIO_ENOSPC;
    if (!b->slots && !(b->slots = virtio_alloc(VBLK_MAX_QD * SLOT_BYTES, 64)))
        return VIRTIO_ENOSPC;
    uint8_t *mine = b->slots + slot * SLOT_BYTES;
    struct virtio_buf bufs[MAX_SEGS + 2];
    int n = build(b, (struct vblk_hdr *)mine, mine + sizeof(struct vblk_hdr), type, sector, buf, len, bufs);
    if (n < 0)
        return n;
    return virtq_add(&b->dev.vq[0], bufs, (unsigned)n, (b->dev.features & VIRTIO_F_INDIRECT_DESC) != 0);
}

uint8_t vblk_slot_status(struct vblk *b, unsigned slot)
{
    return *(volatile uint8_t *)(b->slots + slot * SLOT_BYTES + sizeof(struct vblk_hdr));
}
