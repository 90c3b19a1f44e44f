/* virtio-blk on top of the polling virtio driver (lib/virtio_blk.c). */
#ifndef KILN_VIRTIO_BLK_H
#define KILN_VIRTIO_BLK_H

#include "virtio.h"

#define VBLK_F_SIZE_MAX     (1ull << 1)
#define VBLK_F_SEG_MAX      (1ull << 2)
#define VBLK_F_RO           (1ull << 5)
#define VBLK_F_BLK_SIZE     (1ull << 6)
#define VBLK_F_FLUSH        (1ull << 9)

#define VBLK_T_IN       0
#define VBLK_T_OUT      1
#define VBLK_T_FLUSH    4
#define VBLK_T_GET_ID   8

#define VBLK_S_OK       0
#define VBLK_S_IOERR    1
#define VBLK_S_UNSUPP   2

#define VBLK_SECTOR     512
#define VBLK_MAX_QD     16      /* requests in flight with vblk_submit */

/* The request header as the device reads it, followed by our status byte. */
struct vblk_hdr {
    uint32_t type;
    uint32_t reserved;
    uint64_t sector;
};

struct vblk {
    struct virtio_dev dev;
    uint64_t want;                  /* optional features asked for */
    uint64_t capacity;              /* in 512-byte sectors */
    uint32_t blk_size, size_max, seg_max;
    struct vblk_hdr *hdr;           /* DMA memory */
    volatile uint8_t *status;
    uint8_t *slots;                 /* VBLK_MAX_QD x (header, status) for vblk_submit */
};

/*
 * Find the first virtio-blk (transport=..., see virtio_find), set it up with
 * the optional features from the command line (event_idx=1, indirect=1) and
 * read its configuration. Prints one line describing the device.
 */
int vblk_open(struct vblk *b, const char *cmdline);
/* Reset and set the same device up again (after a hostile test). */
int vblk_setup(struct vblk *b);
/*
 * One request: type IN/OUT/FLUSH/GET_ID, len bytes at buf (0 for FLUSH).
 * Returns the device's status byte (0 = OK) or a negative VIRTIO_E* code.
 */
int vblk_request(struct vblk *b, uint32_t type, uint64_t sector, void *buf, uint32_t len);
/*
 * Queues a request without waiting or notifying, with slot's own header and
 * status byte (slot < VBLK_MAX_QD), so several can be in flight. Returns the
 * chain head (its used element names it) or a negative VIRTIO_E* code; notify
 * with virtq_kick after a batch, read the result with vblk_slot_status.
 */
int vblk_submit(struct vblk *b, unsigned slot, uint32_t type, uint64_t sector, void *buf, uint32_t len);
uint8_t vblk_slot_status(struct vblk *b, unsigned slot);

#endif
