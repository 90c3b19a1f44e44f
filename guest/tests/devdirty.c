/*
 * test=devdirty [mb=32] [disk_mb=4] [tick_ms=100] [transport=pci|mmio]: a live-migration workload whose RAM is
 * written by a device, not by the CPU. It fills the first virtio-blk disk with a known pattern (64 KiB chunks, each
 * different), then keeps reading chunks into the slots of an mb-MiB buffer: before a slot is read into again, the
 * CPU checks it still holds the chunk it was last given ("DEVDIRTY MISMATCH" and exit 2 if not). Only the device
 * ever writes the slots, so KVM's dirty log never sees those pages: a migration that misses the VMM's own writes
 * brings stale slots to the destination, and the check there finds them. Prints "tick N" every tick_ms and, every
 * 10 ticks, "devcheck N ok slots=V" with the number of slots verified so far.
 */
#include "tests.h"
#include "virtio_blk.h"

#define CHUNK (64u << 10)
#define CHUNK_SECTORS (CHUNK / VBLK_SECTOR)
#define NO_CHUNK (~0ull)

static uint64_t chunk_word(uint64_t chunk, uint64_t w)
{
    return ((chunk + 1) << 40) ^ (w * 0x9e3779b97f4a7c15ull) ^ 0x5a5a5a5a5a5a5a5aull;
}

static void fill_chunk(uint64_t *p, uint64_t chunk)
{
    for (uint64_t w = 0; w < CHUNK / 8; w++)
        p[w] = chunk_word(chunk, w);
}

/* Index of the first word that differs from chunk's pattern, or -1. */
static int64_t check_chunk(const volatile uint64_t *p, uint64_t chunk)
{
    for (uint64_t w = 0; w < CHUNK / 8; w++)
        if (p[w] != chunk_word(chunk, w))
            return (int64_t)w;
    return -1;
}

int test_devdirty(const char *cmdline)
{
    uint64_t mb = arg_u64(cmdline, "mb", 32), disk_mb = arg_u64(cmdline, "disk_mb", 4);
    uint64_t tick_ms = arg_u64(cmdline, "tick_ms", 100);
    struct vblk *b = virtio_alloc(sizeof(struct vblk), 64);
    if (!b || vblk_open(b, cmdline) < 0)
        return 1;
    uint64_t chunks = disk_mb * (1 << 20) / CHUNK, slots = mb * (1 << 20) / CHUNK;
    if (chunks < 2 || chunks * CHUNK_SECTORS > b->capacity || slots == 0) {
        printf("devdirty: need 2+ chunks within the disk (%lu sectors) and mb >= 1\n", (unsigned long)b->capacity);
        return 1;
    }
    uint8_t *buffer = virtio_alloc(slots * CHUNK, 4096);
    uint64_t *slot_chunk = virtio_alloc(slots * sizeof(uint64_t), 64);
    if (!buffer || !slot_chunk)
        return 1;
    for (uint64_t c = 0; c < chunks; c++) {
        fill_chunk((uint64_t *)buffer, c);
        int st = vblk_request(b, VBLK_T_OUT, c * CHUNK_SECTORS, buffer, CHUNK);
        if (st != VBLK_S_OK) {
            printf("devdirty: writing chunk %lu failed: %d\n", (unsigned long)c, st);
            return 1;
        }
    }
    for (uint64_t s = 0; s < slots; s++)
        slot_chunk[s] = NO_CHUNK;
    printf("devdirty start mb=%lu chunks=%lu slots=%lu\n", (unsigned long)mb, (unsigned long)chunks,
           (unsigned long)slots);

    uint64_t tick_cycles = tsc_hz() / 1000 * tick_ms, next = rdtsc() + tick_cycles, tick = 0, verified = 0;
    for (uint64_t pass = 0;; pass++) {
        for (uint64_t s = 0; s < slots; s++) {
            volatile uint64_t *slot = (volatile uint64_t *)(buffer + s * CHUNK);
            uint64_t had = slot_chunk[s];
            if (had != NO_CHUNK) {
                int64_t w = check_chunk(slot, had);
                if (w >= 0) {
                    printf("DEVDIRTY MISMATCH slot %lu word %ld holds %lx, expected chunk %lu (%lx)\n",
                           (unsigned long)s, (long)w, (unsigned long)slot[w], (unsigned long)had,
                           (unsigned long)chunk_word(had, (uint64_t)w));
                    return 2;
                }
                verified++;
            }
            uint64_t c = (s * 7 + pass * 13 + 1) % chunks;
            if (c == had)
                c = (c + 1) % chunks;
            int st = vblk_request(b, VBLK_T_IN, c * CHUNK_SECTORS, (void *)slot, CHUNK);
            if (st != VBLK_S_OK) {
                printf("devdirty: reading chunk %lu failed: %d\n", (unsigned long)c, st);
                return 1;
            }
            slot_chunk[s] = c;
            if (rdtsc() >= next) {
                next += tick_cycles;
                tick++;
                printf("tick %lu\n", (unsigned long)tick);
                if (tick % 10 == 0)
                    printf("devcheck %lu ok slots=%lu\n", (unsigned long)tick, (unsigned long)verified);
            }
        }
    }
}
