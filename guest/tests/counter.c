/*
 * test=counter [count=N] [delay_us=D] [fill_mib=M] [blk=1 transport=pci|mmio]: a long-running guest for
 * snapshot and migration tests. Optionally fills M MiB of RAM with a pattern first (prints its checksum), then
 * prints "tick I" every D microseconds (default 10 ms) for N ticks (default forever) and exits 0. With blk=1
 * every tick also writes a sector of the first virtio-blk disk tagged with I, reads it back and checks it
 * ("tick I blk ok"); with rng=1 it also reads 16 bytes from the first virtio-rng (" rng ok"). The host checks that ticks continue across a save/restore with no gap or repeat, and at the
 * end ("counter done") the filled RAM is checked again.
 */
#include "tests.h"
#include "virtio.h"
#include "virtio_blk.h"

static int rng_tick(struct virtio_dev *d, uint8_t *buf)
{
    for (uint32_t got = 0; got < 16;) {
        struct virtio_buf b = { (uintptr_t)buf + got, 16 - got, true };
        int n = virtio_transfer(d, &d->vq[0], &b, 1);
        if (n <= 0 || (uint32_t)n > 16 - got) {
            printf(" rng failed: %d\n", n);
            return 1;
        }
        got += (uint32_t)n;
    }
    return 0;
}

static uint64_t sum64(const uint64_t *p, uint64_t words)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (uint64_t i = 0; i < words; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static int blk_tick(struct vblk *b, uint8_t *buf, uint64_t i)
{
    uint64_t sector = 8 + i % (b->capacity - 8);
    for (uint32_t k = 0; k < VBLK_SECTOR; k++)
        buf[k] = (uint8_t)(i * 13 + k);
    int st = vblk_request(b, VBLK_T_OUT, sector, buf, VBLK_SECTOR);
    if (st != VBLK_S_OK) {
        printf("tick %lu blk write failed: %d\n", (unsigned long)i, st);
        return 1;
    }
    memset(buf, 0, VBLK_SECTOR);
    st = vblk_request(b, VBLK_T_IN, sector, buf, VBLK_SECTOR);
    for (uint32_t k = 0; st == VBLK_S_OK && k < VBLK_SECTOR; k++)
        if (buf[k] != (uint8_t)(i * 13 + k))
            st = -100;
    if (st != VBLK_S_OK) {
        printf("tick %lu blk read-back failed: %d\n", (unsigned long)i, st);
        return 1;
    }
    printf("tick %lu blk ok", (unsigned long)i);
    return 0;
}

int test_counter(const char *cmdline)
{
    uint64_t count = arg_u64(cmdline, "count", ~0ull), delay = arg_u64(cmdline, "delay_us", 10000);
    uint64_t fill_mib = arg_u64(cmdline, "fill_mib", 0);
    uint64_t *fill = 0, words = fill_mib << 17, filled = 0;
    if (fill_mib) {
        fill = virtio_alloc(fill_mib << 20, 4096);
        if (!fill) {
            puts("counter: cannot allocate fill");
            return 1;
        }
        for (uint64_t i = 0; i < words; i++)
            fill[i] = i * 0x9e3779b97f4a7c15ull + 1;
        filled = sum64(fill, words);
        printf("counter: filled %lu MiB sum 0x%lx\n", (unsigned long)fill_mib, (unsigned long)filled);
    }
    struct vblk *b = 0;
    uint8_t *buf = 0;
    if (arg_u64(cmdline, "blk", 0)) {
        b = virtio_alloc(sizeof(struct vblk), 64);
        buf = virtio_alloc(VBLK_SECTOR, 4096);
        if (!b || !buf || vblk_open(b, cmdline) < 0 || b->capacity < 16)
            return 1;
    }
    struct virtio_dev *rng = 0;
    uint8_t *rbuf = 0;
    if (arg_u64(cmdline, "rng", 0)) {
        rng = virtio_alloc(sizeof(*rng), 64);
        rbuf = virtio_alloc(16, 64);
        int err = rng && rbuf ? virtio_find(rng, cmdline, VIRTIO_ID_RNG, 0) : -1;
        if (err >= 0)
            err = virtio_setup(rng, virtio_opt_features(cmdline), 1, 0);
        if (err < 0) {
            printf("counter: virtio-rng: %s\n", virtio_strerror(err));
            return 1;
        }
    }
    puts("counter start");
    for (uint64_t i = 0; i < count; i++) {
        if (b) {
            if (blk_tick(b, buf, i))
                return 1;
        } else {
            printf("tick %lu", (unsigned long)i);
        }
        if (rng) {
            if (rng_tick(rng, rbuf))
                return 1;
            printf(" rng ok");
        }
        puts("");
        delay_us(delay);
    }
    if (fill && sum64(fill, words) != filled) {
        puts("counter: fill checksum MISMATCH");
        return 1;
    }
    puts("counter done");
    return 0;
}
