/*
 * virtio-mmio transport, version 2 (virtio 1.x section 4.2). Devices come
 * from virtio_mmio.device=<size>@<base>:<irq>[:<id>] command-line tokens
 * (Linux's format), every occurrence counts.
 */
#include "virtio.h"

#define MMIO_MAGIC          0x000
#define MMIO_VERSION        0x004
#define MMIO_DEVICE_ID      0x008
#define MMIO_DEV_FEATURES   0x010
#define MMIO_DEV_FEAT_SEL   0x014
#define MMIO_DRV_FEATURES   0x020
#define MMIO_DRV_FEAT_SEL   0x024
#define MMIO_QUEUE_SEL      0x030
#define MMIO_QUEUE_NUM_MAX  0x034
#define MMIO_QUEUE_NUM      0x038
#define MMIO_QUEUE_READY    0x044
#define MMIO_QUEUE_NOTIFY   0x050
#define MMIO_STATUS         0x070
#define MMIO_QUEUE_DESC     0x080
#define MMIO_QUEUE_DRIVER   0x090
#define MMIO_QUEUE_DEVICE   0x0a0
#define MMIO_GENERATION     0x0fc
#define MMIO_CONFIG         0x100
#define MMIO_MAGIC_VALUE    0x74726976u     /* "virt" */

#define TOKEN "virtio_mmio.device="

const char *virtio_parse_size(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    unsigned base = 10, digits = 0;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
    }
    for (;; s++, digits++) {
        unsigned dgt;
        if (*s >= '0' && *s <= '9')
            dgt = (unsigned)(*s - '0');
        else if (base == 16 && *s >= 'a' && *s <= 'f')
            dgt = (unsigned)(*s - 'a' + 10);
        else if (base == 16 && *s >= 'A' && *s <= 'F')
            dgt = (unsigned)(*s - 'A' + 10);
        else
            break;
        v = v * base + dgt;
    }
    if (!digits)
        return NULL;
    switch (*s) {
    case 'G': case 'g': v <<= 10; /* fall through */
    case 'M': case 'm': v <<= 10; /* fall through */
    case 'K': case 'k': v <<= 10; s++; break;
    default: break;
    }
    *out = v;
    return s;
}

static bool token_end(char c)
{
    return c == '\0' || c == ' ' || c == '\t' || c == '\n';
}

/* One token's value: <size>@<base>:<irq>[:<id>]. */
static bool parse_slot(const char *v, struct virtio_mmio_slot *slot)
{
    uint64_t irq;
    if (!(v = virtio_parse_size(v, &slot->size)) || *v++ != '@')
        return false;
    if (!(v = virtio_parse_size(v, &slot->base)) || *v++ != ':')
        return false;
    if (!(v = virtio_parse_size(v, &irq)))
        return false;
    slot->irq = (uint32_t)irq;
    if (*v == ':') {                        /* optional platform device id: skip it */
        uint64_t id;
        if (!(v = virtio_parse_size(v + 1, &id)))
            return false;
    }
    return token_end(*v) && slot->size != 0;
}

unsigned virtio_mmio_parse(const char *cmdline, struct virtio_mmio_slot *slots, unsigned max)
{
    unsigned n = 0;
    size_t tlen = strlen(TOKEN);
    for (const char *p = cmdline; *p;) {
        while (*p == ' ' || *p == '\t' || *p == '\n')
            p++;
        if (memcmp(p, TOKEN, tlen) == 0) {
            struct virtio_mmio_slot s;
            if (parse_slot(p + tlen, &s)) {
                if (n < max)
                    slots[n] = s;
                n++;
            } else {
                printf("virtio-mmio: malformed virtio_mmio.device token ignored\n");
            }
        }
        while (*p && !token_end(*p))
            p++;
    }
    return n;
}

static uint32_t rd(struct virtio_dev *d, unsigned off) { return mmio_read32(d->base + off); }
static void wr(struct virtio_dev *d, unsigned off, uint32_t v) { mmio_write32(d->base + off, v); }

static uint8_t m_get_status(struct virtio_dev *d) { return (uint8_t)rd(d, MMIO_STATUS); }
static void m_set_status(struct virtio_dev *d, uint8_t s) { wr(d, MMIO_STATUS, s); }
static uint8_t m_generation(struct virtio_dev *d) { return (uint8_t)rd(d, MMIO_GENERATION); }

static uint64_t m_get_features(struct virtio_dev *d)
{
    wr(d, MMIO_DEV_FEAT_SEL, 0);
    uint64_t lo = rd(d, MMIO_DEV_FEATURES);
    wr(d, MMIO_DEV_FEAT_SEL, 1);
    return lo | (uint64_t)rd(d, MMIO_DEV_FEATURES) << 32;
}

static void m_set_features(struct virtio_dev *d, uint64_t f)
{
    wr(d, MMIO_DRV_FEAT_SEL, 0);
    wr(d, MMIO_DRV_FEATURES, (uint32_t)f);
    wr(d, MMIO_DRV_FEAT_SEL, 1);
    wr(d, MMIO_DRV_FEATURES, (uint32_t)(f >> 32));
}

static uint16_t m_queue_max(struct virtio_dev *d, uint16_t index)
{
    wr(d, MMIO_QUEUE_SEL, index);
    if (rd(d, MMIO_QUEUE_READY))
        return 0;                           /* must not be in use yet (after reset) */
    uint32_t max = rd(d, MMIO_QUEUE_NUM_MAX);
    return (uint16_t)(max > 0xFFFF ? 0x8000 : max);
}

static void wr64(struct virtio_dev *d, unsigned off, uint64_t v)
{
    wr(d, off, (uint32_t)v);
    wr(d, off + 4, (uint32_t)(v >> 32));
}

static int m_queue_enable(struct virtio_dev *d, struct virtq *q)
{
    wr(d, MMIO_QUEUE_SEL, q->index);
    wr(d, MMIO_QUEUE_NUM, q->size);
    wr64(d, MMIO_QUEUE_DESC, (uintptr_t)q->desc);
    wr64(d, MMIO_QUEUE_DRIVER, (uintptr_t)q->avail);
    wr64(d, MMIO_QUEUE_DEVICE, (uintptr_t)q->used);
    wr(d, MMIO_QUEUE_READY, 1);
    return rd(d, MMIO_QUEUE_READY) == 1 ? VIRTIO_OK : VIRTIO_EIO;
}

static void m_notify(struct virtio_dev *d, struct virtq *q) { wr(d, MMIO_QUEUE_NOTIFY, q->index); }

static uint32_t m_cfg_read(struct virtio_dev *d, unsigned off, unsigned width)
{
    uintptr_t a = d->base + MMIO_CONFIG + off;
    if (width == 1)
        return mmio_read8(a);
    if (width == 2)
        return mmio_read16(a);
    return mmio_read32(a);
}

static const struct virtio_ops mmio_ops = {
    .get_status = m_get_status,
    .set_status = m_set_status,
    .get_features = m_get_features,
    .set_features = m_set_features,
    .queue_max = m_queue_max,
    .queue_enable = m_queue_enable,
    .notify = m_notify,
    .cfg_read = m_cfg_read,
    .cfg_generation = m_generation,
};

int virtio_mmio_find(struct virtio_dev *d, const char *cmdline, uint16_t type, unsigned nth)
{
    struct virtio_mmio_slot slots[32];
    unsigned n = virtio_mmio_parse(cmdline, slots, 32);
    if (n > 32)
        n = 32;
    for (unsigned i = 0; i < n; i++) {
        if (slots[i].base + slots[i].size > 0x100000000ull || slots[i].size < 0x100) {
            printf("virtio-mmio: slot 0x%lx size 0x%lx unusable (outside 4 GiB or too small)\n",
                   (unsigned long)slots[i].base, (unsigned long)slots[i].size);
            continue;
        }
        uintptr_t base = (uintptr_t)slots[i].base;
        uint32_t magic = mmio_read32(base + MMIO_MAGIC), version = mmio_read32(base + MMIO_VERSION);
        if (magic != MMIO_MAGIC_VALUE) {
            printf("virtio-mmio: 0x%lx: bad magic 0x%x\n", (unsigned long)base, magic);
            continue;
        }
        uint32_t id = mmio_read32(base + MMIO_DEVICE_ID);
        if (id == 0)
            continue;                       /* empty slot */
        if (version != 2) {
            printf("virtio-mmio: 0x%lx: device type %u has version %u (need 2), skipped\n", (unsigned long)base, id,
                   version);
            continue;
        }
        if (id != type || nth--)
            continue;
        d->ops = &mmio_ops;
        d->transport = VIRTIO_MMIO;
        d->type = type;
        d->base = base;
        snprintf(d->where, sizeof(d->where), "mmio 0x%lx irq %u", (unsigned long)base, slots[i].irq);
        return VIRTIO_OK;
    }
    return VIRTIO_ENODEV;
}
