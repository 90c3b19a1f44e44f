/*
 * test=mmio-sweep [transport=pci|mmio]: a hostile driver against every register window of the virtio transports.
 * The VMM must survive it, put devices into DEVICE_NEEDS_RESET where the driver broke the protocol, and serve a
 * well-behaved driver again after a reset.
 *
 *  1. Sweep: byte offsets of every window, at widths 1, 2, 4 and 8, read and then written with a garbage value:
 *     a virtio-mmio slot's 4 KiB page, a virtio-pci function's BAR 0 (common configuration, ISR, device
 *     configuration, notify, MSI-X table and PBA, and the gaps between them); by default the parts of each page
 *     that hold registers (see sweep_window), every byte with full=1. On PCI, then every
 *     function's configuration space (0..0xFF through 0xCF8/0xCFC, widths 1, 2 and 4 at every offset, including
 *     the BARs, the command register and the MSI-X control), each function's BAR, command and MSI-X control put
 *     back afterwards. Kiln has no ECAM (no MCFG table), so configuration mechanism #1 is the only way in.
 *     Every garbage byte has its top bit set, so any ring address it forms lies far outside guest RAM, no queue
 *     is ever enabled by it (QUEUE_ENABLE wants 1) and every status byte it writes carries FAILED: the device
 *     never processes a ring the sweep made up, which would make the run depend on timing.
 *  2. PCI: the VIRTIO_PCI_CAP_PCI_CFG window aimed at each region and past the BAR's end, lengths 0..4.
 *  3. Hostile activation: DRIVER_OK with queue 0's rings outside guest RAM must give NEEDS_RESET. On PCI with
 *     MSI-X on and the configuration vector aimed at a destination no CPU has (APIC id 15), so the
 *     NEEDS_RESET interrupt is one KVM refuses; then a real request whose queue vector is that entry (the
 *     device worker's interrupt).
 *  4. PCI, with two functions A and B: A's BAR onto B's (A's notify address is taken: KVM_IOEVENTFD says
 *     EEXIST), B's onto guest RAM (RAM stays RAM), A used at B's old address (its notifications now exit to the
 *     VMM), B outside the bridge's window, then both back; both must work.
 *  5. Every device is reset, set up as a driver would and used once (blk: read sector 0; rng: 16 bytes; console
 *     and net: set up).
 */
#include "tests.h"
#include "virtio_blk.h"

#define MAX_TARGETS     8
#define OUTSIDE_RAM     0x7fff00000000ull
#define RAM_SPOT        0x03000000ull   /* guest RAM nothing uses (48 MiB: run with 64M or more) */
#define OUTSIDE_WINDOW  0xF0000000ull   /* above Kiln's PCI window (0xE0000000, 256 MiB), below the IOAPIC */
#define BAD_MSI_ADDRESS 0xFEE0F000u     /* xAPIC physical destination 15: no such CPU */
#define BAD_MSI_DATA    0x31u

/* Common configuration (virtio 1.x 4.1.4.3). */
#define CC_GFSELECT     0x08
#define CC_GF           0x0C
#define CC_MSIX         0x10
#define CC_STATUS       0x14
#define CC_Q_SELECT     0x16
#define CC_Q_SIZE       0x18
#define CC_Q_MSIX       0x1A
#define CC_Q_ENABLE     0x1C
#define CC_Q_DESC       0x20
#define CC_Q_DRIVER     0x28
#define CC_Q_DEVICE     0x30

/* virtio-mmio registers. */
#define MM_DRV_FEATURES     0x020
#define MM_DRV_FEAT_SEL     0x024
#define MM_QUEUE_SEL        0x030
#define MM_QUEUE_NUM        0x038
#define MM_QUEUE_READY      0x044
#define MM_STATUS           0x070
#define MM_QUEUE_DESC       0x080
#define MM_QUEUE_DRIVER     0x090
#define MM_QUEUE_DEVICE     0x0a0

struct target {
    unsigned slot;              /* PCI device number, or index of the virtio_mmio.device= token */
    uint16_t type;              /* virtio device type; 0 for a non-virtio PCI function */
    uint64_t base, size;        /* BAR 0, or the virtio-mmio window */
    unsigned msix_cap;          /* PCI: offset of the MSI-X capability, 0 if none */
    uint64_t common, msix_table, pci_cfg_cap;
};

static struct target targets[MAX_TARGETS];
static unsigned ntargets;
static uint64_t accesses;

static uint64_t garbage(uint64_t where, unsigned width)
{
    uint64_t x = where * 0x9E3779B97F4A7C15ull ^ width * 0xC2B2AE3D27D4EB4Full;
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 32;
    return x | 0x8080808080808080ull;
}

/* ---- PCI configuration mechanism #1 ---- */

static void cfg_select(unsigned slot, unsigned off)
{
    outl(0x80000000u | slot << 11 | (off & 0xFC), 0xCF8);
}

static uint32_t cfg_read(unsigned slot, unsigned off, unsigned width)
{
    cfg_select(slot, off);
    uint16_t port = (uint16_t)(0xCFC + (off & 3));
    return width == 1 ? inb(port) : width == 2 ? inw(port) : inl(port);
}

static void cfg_write(unsigned slot, unsigned off, unsigned width, uint32_t v)
{
    cfg_select(slot, off);
    uint16_t port = (uint16_t)(0xCFC + (off & 3));
    if (width == 1)
        outb((uint8_t)v, port);
    else if (width == 2)
        outw((uint16_t)v, port);
    else
        outl(v, port);
}

static uint64_t bar0(unsigned slot)
{
    return (cfg_read(slot, 0x10, 4) & ~0xFull) | (uint64_t)cfg_read(slot, 0x14, 4) << 32;
}

/* Moves BAR 0 (a 64-bit memory BAR) with memory decoding on, as a guest kernel reassigning resources would. */
static void move_bar(unsigned slot, uint64_t to)
{
    cfg_write(slot, 0x10, 4, (uint32_t)to);
    cfg_write(slot, 0x14, 4, (uint32_t)(to >> 32));
}

static void find_pci_targets(void)
{
    for (unsigned slot = 0; slot < 32 && ntargets < MAX_TARGETS; slot++) {
        uint32_t id = cfg_read(slot, 0, 4);
        if ((id & 0xFFFF) == 0xFFFF)
            continue;
        struct target *t = &targets[ntargets++];
        memset(t, 0, sizeof(*t));
        t->slot = slot;
        if ((id & 0xFFFF) != 0x1AF4 || (id >> 16) < 0x1040)
            continue;
        t->type = (uint16_t)((id >> 16) - 0x1040);
        t->base = bar0(slot);
        t->size = 0x8000;
        uint64_t msix_table_off = 0;
        for (unsigned cap = cfg_read(slot, 0x34, 1) & 0xFC, guard = 0; cap && guard < 48; guard++) {
            uint8_t id8 = (uint8_t)cfg_read(slot, cap, 1);
            if (id8 == 0x11) {
                t->msix_cap = cap;
                msix_table_off = cfg_read(slot, cap + 4, 4) & ~7u;
            } else if (id8 == 0x09) {
                uint8_t kind = (uint8_t)cfg_read(slot, cap + 3, 1);
                if (kind == 1)
                    t->common = cfg_read(slot, cap + 8, 4);
                else if (kind == 5)
                    t->pci_cfg_cap = cap;
            }
            cap = cfg_read(slot, cap + 1, 1) & 0xFC;
        }
        t->common += t->base;
        t->msix_table = t->base + msix_table_off;
        cfg_write(slot, 0x04, 2, cfg_read(slot, 0x04, 2) | 0x6);   /* memory decoding + bus master, as a driver does */
    }
}

static void find_mmio_targets(const char *cmdline)
{
    struct virtio_mmio_slot slots[MAX_TARGETS];
    unsigned n = virtio_mmio_parse(cmdline, slots, MAX_TARGETS);
    for (unsigned i = 0; i < n && i < MAX_TARGETS; i++) {
        struct target *t = &targets[ntargets++];
        memset(t, 0, sizeof(*t));
        t->slot = i;
        t->base = slots[i].base;
        t->size = 0x1000;                           /* the slot's page: registers, config, and what lies past them */
        t->type = (uint16_t)mmio_read32(t->base + 8);
        t->common = t->base;
    }
}

/* ---- 1. the sweep ---- */

static void sweep_at(uintptr_t a)
{
    (void)mmio_read8(a);
    mmio_write8(a, (uint8_t)garbage(a, 1));
    (void)mmio_read16(a);
    mmio_write16(a, (uint16_t)garbage(a, 2));
    (void)mmio_read32(a);
    mmio_write32(a, (uint32_t)garbage(a, 4));
    (void)mmio_read64(a);
    mmio_write64(a, garbage(a, 8));
    accesses += 8;
}

/*
 * Every byte of a window (full=1), or, by default, of what holds registers: the first 0x200 bytes of each 4 KiB
 * page (every virtio-pci region Kiln has, and a virtio-mmio slot's registers and configuration, start a page and
 * are shorter than that) and the last 16 bytes (accesses that run off a page's end). An MMIO exit costs 80-90 us
 * on a PVM host, so the default keeps the test near ten seconds.
 */
static void sweep_window(uint64_t base, uint64_t size, bool full)
{
    for (uint64_t off = 0; off < size; off++)
        if (full || (off & 0xFFF) < 0x200 || (off & 0xFFF) >= 0xFF0)
            sweep_at((uintptr_t)(base + off));
}

static void sweep_config(const struct target *t)
{
    uint32_t command = cfg_read(t->slot, 0x04, 2);      /* decoding on for a virtio function (find_pci_targets) */
    for (unsigned off = 0; off < 256; off++)
        for (unsigned width = 1; width <= 4; width <<= 1) {
            (void)cfg_read(t->slot, off, width);
            cfg_write(t->slot, off, width, (uint32_t)garbage(t->slot << 8 | off, width));
            accesses += 4;
        }
    if (t->type) {
        move_bar(t->slot, t->base);
        if (t->msix_cap)
            cfg_write(t->slot, t->msix_cap + 2, 2, 0);
    }
    cfg_write(t->slot, 0x04, 2, command);
}

/* ---- 2. the PCI configuration access window ---- */

static void sweep_pci_cfg_window(const struct target *t)
{
    static const uint32_t offsets[] = { 0x0, 0x14, 0x1000, 0x2000, 0x3000, 0x4000, 0x5000, 0x7FFC, 0x7FFF,
                                        0x8000, 0xFFFFFFFFu };
    unsigned cap = (unsigned)t->pci_cfg_cap;
    for (unsigned i = 0; i < sizeof(offsets) / sizeof(offsets[0]); i++)
        for (uint32_t len = 0; len <= 4; len++) {
            cfg_write(t->slot, cap + 4, 1, 0);              /* BAR 0 */
            cfg_write(t->slot, cap + 8, 4, offsets[i]);
            cfg_write(t->slot, cap + 12, 4, len);
            for (unsigned width = 1; width <= 4; width <<= 1) {
                (void)cfg_read(t->slot, cap + 16, width);
                cfg_write(t->slot, cap + 16, width, (uint32_t)garbage(offsets[i] + len, width));
                accesses += 2;
            }
        }
}

/* ---- 3. hostile activation ---- */

static bool wait_status_zero(uint64_t status_reg, bool mmio32)
{
    for (unsigned i = 0; i < 100000; i++) {
        if ((mmio32 ? mmio_read32(status_reg) : mmio_read8(status_reg)) == 0)
            return true;
        cpu_relax();
    }
    return false;
}

/* DRIVER_OK with queue 0's rings outside RAM; returns the status read back. config_vector: PCI only (or 0xFFFF). */
static uint8_t hostile_activation(const struct target *t, bool pci, uint16_t config_vector)
{
    uint64_t c = t->common;
    if (pci) {
        mmio_write8(c + CC_STATUS, 0);
        wait_status_zero(c + CC_STATUS, false);
        mmio_write16(c + CC_MSIX, config_vector);
        mmio_write8(c + CC_STATUS, 0x01);
        mmio_write8(c + CC_STATUS, 0x03);
        mmio_write32(c + CC_GFSELECT, 1);
        mmio_write32(c + CC_GF, 1);                         /* VERSION_1 */
        mmio_write8(c + CC_STATUS, 0x0B);
        mmio_write16(c + CC_Q_SELECT, 0);
        mmio_write16(c + CC_Q_SIZE, 16);
        mmio_write64(c + CC_Q_DESC, OUTSIDE_RAM);
        mmio_write64(c + CC_Q_DRIVER, OUTSIDE_RAM + 0x1000);
        mmio_write64(c + CC_Q_DEVICE, OUTSIDE_RAM + 0x2000);
        mmio_write16(c + CC_Q_ENABLE, 1);
        mmio_write8(c + CC_STATUS, 0x0F);
        return mmio_read8(c + CC_STATUS);
    }
    mmio_write32(c + MM_STATUS, 0);
    wait_status_zero(c + MM_STATUS, true);
    mmio_write32(c + MM_STATUS, 0x01);
    mmio_write32(c + MM_STATUS, 0x03);
    mmio_write32(c + MM_DRV_FEAT_SEL, 1);
    mmio_write32(c + MM_DRV_FEATURES, 1);
    mmio_write32(c + MM_STATUS, 0x0B);
    mmio_write32(c + MM_QUEUE_SEL, 0);
    mmio_write32(c + MM_QUEUE_NUM, 16);
    mmio_write32(c + MM_QUEUE_DESC, (uint32_t)OUTSIDE_RAM);
    mmio_write32(c + MM_QUEUE_DESC + 4, (uint32_t)(OUTSIDE_RAM >> 32));
    mmio_write32(c + MM_QUEUE_DRIVER, (uint32_t)OUTSIDE_RAM);
    mmio_write32(c + MM_QUEUE_DRIVER + 4, (uint32_t)(OUTSIDE_RAM >> 32));
    mmio_write32(c + MM_QUEUE_DEVICE, (uint32_t)OUTSIDE_RAM);
    mmio_write32(c + MM_QUEUE_DEVICE + 4, (uint32_t)(OUTSIDE_RAM >> 32));
    mmio_write32(c + MM_QUEUE_READY, 1);
    mmio_write32(c + MM_STATUS, 0x0F);
    return (uint8_t)mmio_read32(c + MM_STATUS);
}

/* MSI-X entry 0 aimed at no CPU, unmasked; MSI-X on (PCI). */
static void bad_msix(const struct target *t)
{
    mmio_write32(t->msix_table + 0, BAD_MSI_ADDRESS);
    mmio_write32(t->msix_table + 4, 0);
    mmio_write32(t->msix_table + 8, BAD_MSI_DATA);
    mmio_write32(t->msix_table + 12, 0);
    cfg_write(t->slot, t->msix_cap + 2, 2, 0x8000);
}

static void msix_off(const struct target *t)
{
    cfg_write(t->slot, t->msix_cap + 2, 2, 0);
    mmio_write32(t->msix_table + 12, 1);
}

static const char *where(const struct target *t, bool pci)
{
    static char buf[48];
    snprintf(buf, sizeof(buf), pci ? "00:%02x.0 %s" : "mmio slot %u %s", t->slot, virtio_type_name(t->type));
    return buf;
}

/* ---- 5. a well-behaved driver afterwards ---- */

static bool device_works(const char *cmdline, uint16_t type, unsigned nth)
{
    if (type == VIRTIO_ID_BLOCK) {
        struct vblk *b = virtio_alloc(sizeof(*b), 64);
        uint8_t *data = virtio_alloc(VBLK_SECTOR, 4096);
        if (vblk_open(b, cmdline) < 0)
            return false;
        int st = vblk_request(b, VBLK_T_IN, 0, data, VBLK_SECTOR);
        return st == VBLK_S_OK;
    }
    struct virtio_dev *d = virtio_alloc(sizeof(*d), 64);
    if (virtio_find(d, cmdline, type, nth) < 0)
        return false;
    unsigned queues = type == VIRTIO_ID_CONSOLE || type == VIRTIO_ID_NET ? 2 : 1;
    if (virtio_setup(d, 0, queues, 0) < 0)
        return false;
    if (type != VIRTIO_ID_RNG)
        return (virtio_status(d) & (VIRTIO_S_NEEDS_RESET | VIRTIO_S_DRIVER_OK)) == VIRTIO_S_DRIVER_OK;
    uint8_t *buf = virtio_alloc(16, 64);
    struct virtio_buf vb = { (uintptr_t)buf, 16, true };
    return virtio_transfer(d, &d->vq[0], &vb, 1) > 0;
}

/* A blk request completes while its queue's MSI-X vector is an entry KVM refuses (the worker's interrupt path). */
static bool blk_with_bad_queue_vector(const char *cmdline, const struct target *t)
{
    struct vblk *b = virtio_alloc(sizeof(*b), 64);
    uint8_t *data = virtio_alloc(VBLK_SECTOR, 4096);
    if (vblk_open(b, cmdline) < 0)
        return false;
    bad_msix(t);
    mmio_write16(t->common + CC_Q_SELECT, 0);
    mmio_write16(t->common + CC_Q_MSIX, 0);
    b->dev.vq[0].avail[0] = 0;                              /* ask for the used-buffer interrupt after all */
    int st = vblk_request(b, VBLK_T_IN, 0, data, VBLK_SECTOR);
    msix_off(t);
    return st == VBLK_S_OK;
}

static int fails;

static void verdict(bool ok, const char *what)
{
    printf("mmio sweep: %s: %s\n", what, ok ? "ok" : "FAILED");
    if (!ok)
        fails++;
}

int test_mmio_sweep(const char *cmdline)
{
    const char *transport = arg_str(cmdline, "transport");
    bool pci = !transport || strcmp(transport, "mmio") != 0;
    if (pci)
        find_pci_targets();
    else
        find_mmio_targets(cmdline);
    unsigned virtio = 0;
    for (unsigned i = 0; i < ntargets; i++)
        if (targets[i].type) {
            virtio++;
            printf("mmio sweep: %s at 0x%lx\n", where(&targets[i], pci), (unsigned long)targets[i].base);
        }
    if (virtio == 0) {
        puts("mmio sweep: no virtio devices");
        return 1;
    }

    bool full = arg_u64(cmdline, "full", 0) != 0;
    uint64_t start = rdtsc();
    for (unsigned i = 0; i < ntargets; i++)
        if (targets[i].type)
            sweep_window(targets[i].base, targets[i].size, full);
    if (pci) {
        for (unsigned i = 0; i < ntargets; i++)
            sweep_config(&targets[i]);
        for (unsigned i = 0; i < ntargets; i++)
            if (targets[i].pci_cfg_cap)
                sweep_pci_cfg_window(&targets[i]);
        sweep_config(&(struct target){ .slot = 31 });       /* an empty slot */
    }
    printf("\nmmio sweep: %lu accesses in %lu ms\n", (unsigned long)accesses,
           (unsigned long)((rdtsc() - start) / (tsc_hz() / 1000)));

    for (unsigned i = 0; i < ntargets; i++) {
        const struct target *t = &targets[i];
        if (!t->type)
            continue;
        bool msi = pci && t->msix_cap;
        if (msi)
            bad_msix(t);
        uint8_t status = hostile_activation(t, pci, msi ? 0 : 0xFFFF);
        if (msi)
            msix_off(t);
        char what[96];
        snprintf(what, sizeof(what), "%s: rings outside RAM%s -> status 0x%02x", where(t, pci),
                 msi ? ", config interrupt to no CPU" : "", status);
        verdict(status != 0xFF && (status & VIRTIO_S_NEEDS_RESET) != 0, what);
    }

    if (pci) {
        for (unsigned i = 0; i < ntargets; i++)
            if (targets[i].type == VIRTIO_ID_BLOCK && targets[i].msix_cap)
                verdict(blk_with_bad_queue_vector(cmdline, &targets[i]), "blk request with its queue interrupt to no CPU");
        const struct target *a = 0, *b = 0;
        for (unsigned i = 0; i < ntargets && !b; i++) {
            if (!targets[i].type)
                continue;
            if (!a)
                a = &targets[i];
            else
                b = &targets[i];
        }
        if (a && b) {
            move_bar(a->slot, b->base);                     /* A onto B: A's notify address is taken */
            move_bar(b->slot, RAM_SPOT);                    /* B onto RAM */
            volatile uint32_t *ram = (volatile uint32_t *)(uintptr_t)(RAM_SPOT + 0x3000);
            *ram = 0x5AA5F00Du;
            verdict(*ram == 0x5AA5F00Du, "BAR moved onto RAM: RAM stays RAM");
            char what[80];
            snprintf(what, sizeof(what), "%s used at %s's address", virtio_type_name(a->type), virtio_type_name(b->type));
            verdict(device_works(cmdline, a->type, 0), what);
            move_bar(b->slot, OUTSIDE_WINDOW);
            verdict(mmio_read32((uintptr_t)OUTSIDE_WINDOW) == 0xFFFFFFFFu, "BAR outside the bridge window is not decoded");
            move_bar(a->slot, a->base);
            move_bar(b->slot, b->base);
            verdict(bar0(a->slot) == a->base && bar0(b->slot) == b->base, "BARs back in place");
        }
    }

    unsigned nth[16] = { 0 };
    for (unsigned i = 0; i < ntargets; i++) {
        const struct target *t = &targets[i];
        if (!t->type)
            continue;
        char what[64];
        snprintf(what, sizeof(what), "%s recovered after a reset", where(t, pci));
        verdict(device_works(cmdline, t->type, nth[t->type & 15]++), what);
    }
    puts(fails ? "mmio sweep: FAILED" : "mmio sweep: vmm alive, devices recovered");
    return fails ? 1 : 0;
}
