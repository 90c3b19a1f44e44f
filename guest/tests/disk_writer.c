/*
 * test=disk-writer [blocks=4096] [writes=0] [tick_ms=100] [seed=1]: the copy-storage migration workload. Writes
 * 4 KiB blocks of the first virtio-blk disk (blocks 0..blocks-1) in a pseudo-random order: write number i (from 1)
 * goes to block b = x % blocks, x the i-th xorshift64 step from 0x9e3779b97f4a7c15 ^ seed, and fills it with the
 * words (i * 0x9e3779b97f4a7c15) ^ (b << 16) ^ k, k = 0..511. The last write number of every block is kept in RAM,
 * and after each write one block chosen by x >> 32 is read back and checked against it, so a write the migration
 * lost (or RAM and disk from different moments) shows up as "DISK MISMATCH" (exit 2). "tick N" every tick_ms,
 * "wrote W" every 10 ticks. After `writes` writes (0: never) every block is verified ("disk verify ok", never
 * written blocks must read as zero), "writes done" is printed and the guest keeps ticking.
 */
#include "tests.h"
#include "virtio_blk.h"

#define BLOCK 4096u
#define WORDS (BLOCK / 8)

static void fill(uint64_t *p, uint64_t i, uint64_t b)
{
    for (uint64_t k = 0; k < WORDS; k++)
        p[k] = (i * 0x9e3779b97f4a7c15ull) ^ (b << 16) ^ k;
}

/* Checks one block read from the disk against the write number RAM remembers for it (0: never written). */
static int check(struct vblk *d, uint64_t b, uint32_t gen, uint64_t *buf, uint64_t *want)
{
    int st = vblk_request(d, VBLK_T_IN, b * (BLOCK / VBLK_SECTOR), buf, BLOCK);
    if (st != VBLK_S_OK) {
        printf("disk-writer: read of block %lu failed: %d\n", (unsigned long)b, st);
        return 1;
    }
    if (gen)
        fill(want, gen, b);
    else
        memset(want, 0, BLOCK);
    if (memcmp(buf, want, BLOCK) != 0) {
        printf("DISK MISMATCH block %lu: expected write %u, found word0 %lx\n", (unsigned long)b, gen,
               (unsigned long)buf[0]);
        return 1;
    }
    return 0;
}

int test_disk_writer(const char *cmdline)
{
    uint64_t blocks = arg_u64(cmdline, "blocks", 4096), writes = arg_u64(cmdline, "writes", 0);
    uint64_t tick_ms = arg_u64(cmdline, "tick_ms", 100), seed = arg_u64(cmdline, "seed", 1);
    struct vblk *d = virtio_alloc(sizeof(struct vblk), 64);
    if (!d || vblk_open(d, cmdline) < 0)
        return 1;
    if (blocks == 0 || blocks > (1u << 20) || blocks * (BLOCK / VBLK_SECTOR) > d->capacity) {
        puts("disk-writer: blocks must be 1..1M and fit on the disk");
        return 1;
    }
    uint32_t *gen = virtio_alloc(blocks * sizeof(uint32_t), 64);
    uint64_t *buf = virtio_alloc(BLOCK, 4096), *back = virtio_alloc(BLOCK, 4096), *want = virtio_alloc(BLOCK, 4096);
    if (!gen || !buf || !back || !want)
        return 1;
    printf("disk-writer start blocks=%lu writes=%lu\n", (unsigned long)blocks, (unsigned long)writes);

    uint64_t tick_cycles = tsc_hz() / 1000 * tick_ms, next = rdtsc() + tick_cycles, tick = 0;
    uint64_t x = 0x9e3779b97f4a7c15ull ^ seed;
    uint64_t i = 0;
    bool done = false;
    for (;;) {
        if (!done && (writes == 0 || i < writes)) {
            i++;
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            uint64_t b = x % blocks;
            fill(buf, i, b);
            int st = vblk_request(d, VBLK_T_OUT, b * (BLOCK / VBLK_SECTOR), buf, BLOCK);
            if (st != VBLK_S_OK) {
                printf("disk-writer: write %lu to block %lu failed: %d\n", (unsigned long)i, (unsigned long)b, st);
                return 1;
            }
            gen[b] = (uint32_t)i;
            uint64_t r = (x >> 32) % blocks;
            if (check(d, r, gen[r], back, want))
                return 2;
        } else if (!done) {
            for (uint64_t b = 0; b < blocks; b++)
                if (check(d, b, gen[b], back, want))
                    return 2;
            printf("disk verify ok %lu blocks\nwrites done %lu\n", (unsigned long)blocks, (unsigned long)i);
            done = true;
        } else {
            cpu_relax();
        }
        if (rdtsc() >= next) {
            next += tick_cycles;
            tick++;
            printf("tick %lu\n", (unsigned long)tick);
            if (tick % 10 == 0)
                printf("wrote %lu\n", (unsigned long)i);
        }
    }
}
