/*
 * Polling virtio 1.x driver for ring-3 test bodies (lib/virtio*.c).
 *
 * Transports: virtio-pci "modern" (PCI bus 0, configuration mechanism #1,
 * vendor capabilities, BARs assigned here if the firmware left them at 0)
 * and virtio-mmio version 2 (devices announced on the command line as
 * virtio_mmio.device=<size>@<base>:<irq>). Split virtqueues only, no
 * interrupts: completions are found by polling the used ring with a TSC
 * timeout. Guest-physical == guest-virtual (identity map), so buffers are
 * handed to the device by their address.
 */
#ifndef KILN_VIRTIO_H
#define KILN_VIRTIO_H

#include "kiln_guest.h"

/* Device types (virtio 1.x section 5). */
#define VIRTIO_ID_NET       1
#define VIRTIO_ID_BLOCK     2
#define VIRTIO_ID_CONSOLE   3
#define VIRTIO_ID_RNG       4

/* Device status bits. */
#define VIRTIO_S_ACKNOWLEDGE    0x01
#define VIRTIO_S_DRIVER         0x02
#define VIRTIO_S_DRIVER_OK      0x04
#define VIRTIO_S_FEATURES_OK    0x08
#define VIRTIO_S_NEEDS_RESET    0x40
#define VIRTIO_S_FAILED         0x80

/* Transport-independent feature bits. */
#define VIRTIO_F_INDIRECT_DESC  (1ull << 28)
#define VIRTIO_F_RING_EVENT_IDX (1ull << 29)
#define VIRTIO_F_VERSION_1      (1ull << 32)

/* Descriptor flags. */
#define VRING_DESC_F_NEXT       1
#define VRING_DESC_F_WRITE      2
#define VRING_DESC_F_INDIRECT   4
#define VRING_AVAIL_F_NO_INTERRUPT 1

/* Error codes (negative returns). */
#define VIRTIO_OK            0
#define VIRTIO_ENODEV      (-1)     /* no such device */
#define VIRTIO_ETIMEDOUT   (-2)     /* device did not answer in time */
#define VIRTIO_ENEEDS_RESET (-3)    /* device set NEEDS_RESET (or FAILED) */
#define VIRTIO_EFEATURES   (-4)     /* VERSION_1 missing or FEATURES_OK not kept */
#define VIRTIO_ENOSPC      (-5)     /* no free descriptors */
#define VIRTIO_EIO         (-6)     /* device-level I/O error / bad transport state */

#define VIRTIO_MAX_QUEUES   4
#define VIRTIO_QUEUE_SIZE   128     /* upper bound used for new queues */
#define VIRTIO_MAX_INDIRECT 16      /* descriptors per indirect table */

enum virtio_transport { VIRTIO_PCI, VIRTIO_MMIO };

struct vring_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

struct vring_used_elem {
    uint32_t id;
    uint32_t len;
};

/* One split virtqueue; memory comes from the DMA pool and is reused across resets. */
struct virtq {
    uint16_t index, size;
    struct vring_desc *desc;
    volatile uint16_t *avail;       /* flags, idx, ring[size], used_event */
    volatile uint16_t *used;        /* flags, idx, then used_elem ring[size], avail_event */
    struct vring_desc *indirect;    /* size tables of VIRTIO_MAX_INDIRECT entries */
    uint16_t avail_idx;             /* driver's copy of avail->idx */
    uint16_t last_used;             /* next used->idx entry to consume */
    uint16_t free_head, num_free;
    uint16_t chain_len[VIRTIO_QUEUE_SIZE];  /* descriptors behind each head, for freeing */
    uintptr_t notify;               /* PCI: notification address */
    void *mem;
    uint16_t mem_size;              /* queue size the memory was allocated for */
};

struct virtio_dev;

/* Transport operations (lib/virtio_pci.c, lib/virtio_mmio.c). */
struct virtio_ops {
    uint8_t (*get_status)(struct virtio_dev *d);
    void (*set_status)(struct virtio_dev *d, uint8_t s);
    uint64_t (*get_features)(struct virtio_dev *d);
    void (*set_features)(struct virtio_dev *d, uint64_t f);
    uint16_t (*queue_max)(struct virtio_dev *d, uint16_t index);    /* 0: no such queue */
    int (*queue_enable)(struct virtio_dev *d, struct virtq *q);
    void (*notify)(struct virtio_dev *d, struct virtq *q);
    uint32_t (*cfg_read)(struct virtio_dev *d, unsigned off, unsigned width);
    uint8_t (*cfg_generation)(struct virtio_dev *d);
};

struct virtio_dev {
    const struct virtio_ops *ops;
    enum virtio_transport transport;
    uint16_t type;
    char where[40];                 /* "pci 00:04.0 bar4=0xfe000000" / "mmio 0xfeb00000" */
    /* PCI */
    uint8_t bus, slot, fn;
    uintptr_t common, notify_base, isr, devcfg;
    uint32_t notify_mult;
    /* MMIO */
    uintptr_t base;
    /* Negotiated */
    uint64_t features;
    unsigned nqueues;
    uint64_t timeout_us;
    struct virtq vq[VIRTIO_MAX_QUEUES];
};

/* A buffer of a chain: device-writable if write. */
struct virtio_buf {
    uint64_t addr;
    uint32_t len;
    bool write;
};

/* ---- Discovery (lib/virtio.c, lib/virtio_pci.c, lib/virtio_mmio.c) ---- */
/*
 * Find the nth device of the given type on the transport chosen by
 * transport=pci|mmio (default pci). Also reads pci_assign=1 (assign BARs even
 * if the firmware did), pci_window=ADDR (where to put them, default
 * 0xE0000000) and timeout_ms=N (default 2000). Prints nothing.
 */
int virtio_find(struct virtio_dev *d, const char *cmdline, uint16_t type, unsigned nth);
int virtio_pci_find(struct virtio_dev *d, uint16_t type, unsigned nth);
int virtio_mmio_find(struct virtio_dev *d, const char *cmdline, uint16_t type, unsigned nth);
/* Optional ring features requested on the command line: event_idx=1 indirect=1. */
uint64_t virtio_opt_features(const char *cmdline);
extern bool virtio_pci_force_assign;
extern uint64_t virtio_pci_window;

/* virtio_mmio.device=<size>@<base>:<irq> tokens of the command line. */
struct virtio_mmio_slot {
    uint64_t size, base;
    uint32_t irq;
};
/* Fills up to max slots; returns the number of well-formed tokens found (may exceed max). */
unsigned virtio_mmio_parse(const char *cmdline, struct virtio_mmio_slot *slots, unsigned max);
/* Parses "4K", "0x1000", "1M", ...; returns the character after the number or NULL. */
const char *virtio_parse_size(const char *s, uint64_t *out);

/* ---- Initialisation (lib/virtio.c) ---- */
/* Write 0 to the status and wait until the device reads back 0. */
int virtio_reset(struct virtio_dev *d);
/*
 * Reset, ACKNOWLEDGE, DRIVER, negotiate (VERSION_1 required; `want` are the
 * optional bits asked for, taken if offered), FEATURES_OK (checked), set up
 * queues 0..nqueues-1 (up to qsize entries each, 0 = VIRTIO_QUEUE_SIZE),
 * DRIVER_OK. On failure sets FAILED and returns an error code.
 */
int virtio_setup(struct virtio_dev *d, uint64_t want, unsigned nqueues, uint16_t qsize);
uint8_t virtio_status(struct virtio_dev *d);
/* Device configuration space, read with a generation check. */
uint32_t virtio_cfg32(struct virtio_dev *d, unsigned off);
uint64_t virtio_cfg64(struct virtio_dev *d, unsigned off);
uint16_t virtio_cfg16(struct virtio_dev *d, unsigned off);
uint8_t virtio_cfg8(struct virtio_dev *d, unsigned off);
const char *virtio_strerror(int err);
const char *virtio_type_name(uint16_t type);

/* ---- Virtqueues (lib/virtio_ring.c) ---- */
/* (Re)initialise the ring state of q (free list, indices); memory must exist. */
void virtq_init(struct virtq *q);
/* Queue a chain (or, if use_indirect, one indirect descriptor); returns head or error. */
int virtq_add(struct virtq *q, const struct virtio_buf *bufs, unsigned n, bool use_indirect);
/* Put descriptor head on the avail ring (raw: no checks) and make it visible. */
void virtq_publish(struct virtq *q, uint16_t head);
/* Notify the device unless RING_EVENT_IDX says it does not want it. */
void virtq_kick(struct virtio_dev *d, struct virtq *q, uint16_t old_avail);
/* Next used element, if any: returns its id (and len), or -1. Frees the chain. */
int virtq_get_used(struct virtq *q, uint32_t *len);
/* Poll for a used element until timeout_us; NEEDS_RESET/FAILED end the wait early. */
int virtq_poll(struct virtio_dev *d, struct virtq *q, uint64_t timeout_us, uint32_t *len);
/* virtq_add + kick + poll for that very chain. Returns used length or error. */
int virtio_transfer(struct virtio_dev *d, struct virtq *q, const struct virtio_buf *bufs, unsigned n);

/* ---- DMA memory (lib/virtio_pool.c): zeroed, above the image, never freed ---- */
void *virtio_alloc(size_t size, size_t align);

static inline void virtio_mb(void) { __asm__ volatile("mfence" ::: "memory"); }
static inline void virtio_barrier(void) { __asm__ volatile("" ::: "memory"); }

#endif
