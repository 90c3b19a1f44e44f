/*
 * virtio-pci "modern" transport (virtio 1.x section 4.1): PCI bus 0 through
 * configuration mechanism #1 (0xCF8/0xCFC), vendor capabilities locating the
 * common/notify/ISR/device structures, memory BARs assigned here if the
 * firmware left them unassigned (or pci_assign=1), MMIO access after that.
 */
#include "virtio.h"

#define PCI_ADDR    0xCF8
#define PCI_DATA    0xCFC
#define PCI_VENDOR_VIRTIO 0x1AF4

#define PCI_COMMAND         0x04
#define PCI_CMD_MEM         0x0002
#define PCI_CMD_MASTER      0x0004
#define PCI_STATUS_CAPS     0x0010      /* in the status register (0x06) */
#define PCI_HEADER_TYPE     0x0E
#define PCI_BAR0            0x10
#define PCI_SUBSYS_ID       0x2E
#define PCI_CAP_PTR         0x34

#define CAP_VENDOR          0x09
#define CFG_COMMON          1
#define CFG_NOTIFY          2
#define CFG_ISR             3
#define CFG_DEVICE          4

/* Common configuration structure offsets. */
#define CC_DFSELECT     0x00
#define CC_DF           0x04
#define CC_GFSELECT     0x08
#define CC_GF           0x0C
#define CC_MSIX         0x10
#define CC_NUMQ         0x12
#define CC_STATUS       0x14
#define CC_GENERATION   0x15
#define CC_Q_SELECT     0x16
#define CC_Q_SIZE       0x18
#define CC_Q_MSIX       0x1A
#define CC_Q_ENABLE     0x1C
#define CC_Q_NOFF       0x1E
#define CC_Q_DESC       0x20
#define CC_Q_DRIVER     0x28
#define CC_Q_DEVICE     0x30
#define NO_VECTOR       0xFFFF

bool virtio_pci_force_assign;
uint64_t virtio_pci_window = 0xE0000000u;

static uint32_t cfg_addr(unsigned bus, unsigned slot, unsigned fn, unsigned off)
{
    return 0x80000000u | bus << 16 | slot << 11 | fn << 8 | (off & 0xFC);
}

static uint32_t pci_read32(unsigned b, unsigned s, unsigned f, unsigned off)
{
    outl(cfg_addr(b, s, f, off), PCI_ADDR);
    return inl(PCI_DATA);
}

static uint16_t pci_read16(unsigned b, unsigned s, unsigned f, unsigned off)
{
    return (uint16_t)(pci_read32(b, s, f, off) >> ((off & 2) * 8));
}

static uint8_t pci_read8(unsigned b, unsigned s, unsigned f, unsigned off)
{
    return (uint8_t)(pci_read32(b, s, f, off) >> ((off & 3) * 8));
}

static void pci_write32(unsigned b, unsigned s, unsigned f, unsigned off, uint32_t v)
{
    outl(cfg_addr(b, s, f, off), PCI_ADDR);
    outl(v, PCI_DATA);
}

static void pci_write16(unsigned b, unsigned s, unsigned f, unsigned off, uint16_t v)
{
    outl(cfg_addr(b, s, f, off), PCI_ADDR);
    outw(v, (uint16_t)(PCI_DATA + (off & 2)));
}

/*
 * Address of memory BAR i, assigning one if needed. 0 if it is an I/O BAR or
 * cannot be placed below 4 GiB (the guest only maps the first 4 GiB).
 */
static uint64_t pci_bar(unsigned b, unsigned s, unsigned f, unsigned i)
{
    unsigned off = PCI_BAR0 + 4 * i;
    uint32_t lo = pci_read32(b, s, f, off);
    if (lo & 1)
        return 0;
    bool is64 = ((lo >> 1) & 3) == 2;
    uint64_t addr = lo & ~0xFull;
    if (is64)
        addr |= (uint64_t)pci_read32(b, s, f, off + 4) << 32;
    if (addr && !virtio_pci_force_assign && addr < 0x100000000ull)
        return addr;

    /* Size it: all-ones with memory decoding off, read the mask back, restore. */
    uint16_t cmd = pci_read16(b, s, f, PCI_COMMAND);
    pci_write16(b, s, f, PCI_COMMAND, cmd & ~PCI_CMD_MEM);
    pci_write32(b, s, f, off, 0xFFFFFFFFu);
    uint64_t mask = pci_read32(b, s, f, off) & ~0xFull;
    pci_write32(b, s, f, off, lo);
    if (is64) {
        uint32_t hi = pci_read32(b, s, f, off + 4);
        pci_write32(b, s, f, off + 4, 0xFFFFFFFFu);
        mask |= (uint64_t)pci_read32(b, s, f, off + 4) << 32;
        pci_write32(b, s, f, off + 4, hi);
    } else {
        mask |= 0xFFFFFFFF00000000ull;
    }
    uint64_t size = ~mask + 1;
    if (mask == 0xFFFFFFFF00000000ull || size == 0) {
        pci_write16(b, s, f, PCI_COMMAND, cmd);
        return 0;                           /* BAR not implemented */
    }
    uint64_t base = (virtio_pci_window + size - 1) & ~(size - 1);
    if (base + size > 0xFEC00000ull) {      /* keep clear of IOAPIC/LAPIC/BIOS */
        printf("virtio-pci: no room for a 0x%lx BAR at 0x%lx\n", (unsigned long)size, (unsigned long)base);
        pci_write16(b, s, f, PCI_COMMAND, cmd);
        return 0;
    }
    virtio_pci_window = base + size;
    pci_write32(b, s, f, off, (uint32_t)base | (lo & 0xF));
    if (is64)
        pci_write32(b, s, f, off + 4, (uint32_t)(base >> 32));
    pci_write16(b, s, f, PCI_COMMAND, cmd);
    printf("virtio-pci: %02x:%02x.%x BAR%u assigned 0x%lx (size 0x%lx, was 0x%lx)\n", b, s, f, i,
           (unsigned long)base, (unsigned long)size, (unsigned long)addr);
    return base;
}

/* Device type of a virtio PCI function, or 0 if it is not one we can drive. */
static uint16_t virtio_type_of(unsigned b, unsigned s, unsigned f)
{
    uint32_t id = pci_read32(b, s, f, 0);
    if ((id & 0xFFFF) != PCI_VENDOR_VIRTIO)
        return 0;
    uint16_t dev = (uint16_t)(id >> 16);
    if (dev >= 0x1040 && dev <= 0x107F)
        return (uint16_t)(dev - 0x1040);
    if (dev >= 0x1000 && dev <= 0x103F)     /* transitional: type is the subsystem id */
        return pci_read16(b, s, f, PCI_SUBSYS_ID);
    return 0;
}

/* Walk the capability list; fills d's structure pointers. */
static int probe_caps(struct virtio_dev *d, unsigned b, unsigned s, unsigned f)
{
    uint64_t bars[6] = { 0 };
    bool have_bar[6] = { false };
    if (!(pci_read16(b, s, f, 0x06) & PCI_STATUS_CAPS))
        return VIRTIO_ENODEV;
    unsigned ptr = pci_read8(b, s, f, PCI_CAP_PTR) & 0xFC;
    for (unsigned guard = 0; ptr && guard < 48; guard++) {
        uint8_t vndr = pci_read8(b, s, f, ptr), next = pci_read8(b, s, f, ptr + 1);
        if (vndr == CAP_VENDOR) {
            uint8_t type = pci_read8(b, s, f, ptr + 3), bar = pci_read8(b, s, f, ptr + 4);
            uint32_t offset = pci_read32(b, s, f, ptr + 8);
            if (bar < 6 && type >= CFG_COMMON && type <= CFG_DEVICE) {
                if (!have_bar[bar]) {
                    bars[bar] = pci_bar(b, s, f, bar);
                    have_bar[bar] = true;
                }
                uintptr_t a = bars[bar] ? (uintptr_t)(bars[bar] + offset) : 0;
                if (type == CFG_COMMON && !d->common) {
                    d->common = a;
                    snprintf(d->where, sizeof(d->where), "pci %02x:%02x.%x bar%u=0x%lx", b, s, f, bar,
                             (unsigned long)bars[bar]);
                } else if (type == CFG_NOTIFY && !d->notify_base) {
                    d->notify_base = a;
                    d->notify_mult = pci_read32(b, s, f, ptr + 16);
                } else if (type == CFG_ISR && !d->isr) {
                    d->isr = a;
                } else if (type == CFG_DEVICE && !d->devcfg) {
                    d->devcfg = a;
                }
            }
        }
        ptr = next & 0xFC;
    }
    if (!d->common || !d->notify_base)
        return VIRTIO_ENODEV;
    pci_write16(b, s, f, PCI_COMMAND, pci_read16(b, s, f, PCI_COMMAND) | PCI_CMD_MEM | PCI_CMD_MASTER);
    return VIRTIO_OK;
}

static uint8_t p_get_status(struct virtio_dev *d) { return mmio_read8(d->common + CC_STATUS); }
static void p_set_status(struct virtio_dev *d, uint8_t s) { mmio_write8(d->common + CC_STATUS, s); }
static uint8_t p_generation(struct virtio_dev *d) { return mmio_read8(d->common + CC_GENERATION); }

static uint64_t p_get_features(struct virtio_dev *d)
{
    mmio_write32(d->common + CC_DFSELECT, 0);
    uint64_t lo = mmio_read32(d->common + CC_DF);
    mmio_write32(d->common + CC_DFSELECT, 1);
    return lo | (uint64_t)mmio_read32(d->common + CC_DF) << 32;
}

static void p_set_features(struct virtio_dev *d, uint64_t f)
{
    mmio_write32(d->common + CC_GFSELECT, 0);
    mmio_write32(d->common + CC_GF, (uint32_t)f);
    mmio_write32(d->common + CC_GFSELECT, 1);
    mmio_write32(d->common + CC_GF, (uint32_t)(f >> 32));
}

static uint16_t p_queue_max(struct virtio_dev *d, uint16_t index)
{
    if (index >= mmio_read16(d->common + CC_NUMQ))
        return 0;
    mmio_write16(d->common + CC_Q_SELECT, index);
    return mmio_read16(d->common + CC_Q_SIZE);
}

/* 64-bit fields as two 32-bit halves (allowed by the spec, simplest for a VMM). */
static void write64(uintptr_t a, uint64_t v)
{
    mmio_write32(a, (uint32_t)v);
    mmio_write32(a + 4, (uint32_t)(v >> 32));
}

static int p_queue_enable(struct virtio_dev *d, struct virtq *q)
{
    mmio_write16(d->common + CC_MSIX, NO_VECTOR);
    mmio_write16(d->common + CC_Q_SELECT, q->index);
    mmio_write16(d->common + CC_Q_SIZE, q->size);
    mmio_write16(d->common + CC_Q_MSIX, NO_VECTOR);
    write64(d->common + CC_Q_DESC, (uintptr_t)q->desc);
    write64(d->common + CC_Q_DRIVER, (uintptr_t)q->avail);
    write64(d->common + CC_Q_DEVICE, (uintptr_t)q->used);
    q->notify = d->notify_base + (uintptr_t)mmio_read16(d->common + CC_Q_NOFF) * d->notify_mult;
    mmio_write16(d->common + CC_Q_ENABLE, 1);
    return mmio_read16(d->common + CC_Q_ENABLE) == 1 ? VIRTIO_OK : VIRTIO_EIO;
}

static void p_notify(struct virtio_dev *d, struct virtq *q)
{
    (void)d;
    mmio_write16(q->notify, q->index);
}

static uint32_t p_cfg_read(struct virtio_dev *d, unsigned off, unsigned width)
{
    if (!d->devcfg)
        return 0;
    if (width == 1)
        return mmio_read8(d->devcfg + off);
    if (width == 2)
        return mmio_read16(d->devcfg + off);
    return mmio_read32(d->devcfg + off);
}

static const struct virtio_ops pci_ops = {
    .get_status = p_get_status,
    .set_status = p_set_status,
    .get_features = p_get_features,
    .set_features = p_set_features,
    .queue_max = p_queue_max,
    .queue_enable = p_queue_enable,
    .notify = p_notify,
    .cfg_read = p_cfg_read,
    .cfg_generation = p_generation,
};

int virtio_pci_find(struct virtio_dev *d, uint16_t type, unsigned nth)
{
    for (unsigned slot = 0; slot < 32; slot++) {
        unsigned nfn = (pci_read8(0, slot, 0, PCI_HEADER_TYPE) & 0x80) ? 8 : 1;
        for (unsigned fn = 0; fn < nfn; fn++) {
            if (virtio_type_of(0, slot, fn) != type)
                continue;
            if (nth--)
                continue;
            d->common = d->notify_base = d->isr = d->devcfg = 0;
            if (probe_caps(d, 0, slot, fn) < 0) {
                printf("virtio-pci: 00:%02x.%x has no usable modern capabilities\n", slot, fn);
                return VIRTIO_ENODEV;
            }
            d->ops = &pci_ops;
            d->transport = VIRTIO_PCI;
            d->type = type;
            d->bus = 0;
            d->slot = (uint8_t)slot;
            d->fn = (uint8_t)fn;
            return VIRTIO_OK;
        }
    }
    return VIRTIO_ENODEV;
}
