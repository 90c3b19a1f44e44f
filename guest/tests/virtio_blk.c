/*
 * test=virtio-blk: first virtio-blk on transport=pci|mmio. Prints capacity and
 * an FNV-1a checksum of sectors 0..nread-1; optionally id=1 (GET_ID), write=1
 * (pattern to sector=S count=C, read back, compare), flush=1, ro=1 (a write must
 * fail with IOERR), bench=1 (mib=M sequential in req=K KiB, ops=N 4 KiB random;
 * with wbench=1 also the same sequential and random volume written; with qd=Q
 * the sequential reads are also run with Q requests in flight), hostile=1 (after
 * write=1: a faulting port write and a malformed request, then the sectors read
 * back after a reset).
 */
#include "tests.h"
#include "virtio_blk.h"

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static void pattern(uint8_t *p, uint64_t sector, uint32_t count)
{
    for (uint32_t s = 0; s < count; s++)
        for (uint32_t i = 0; i < VBLK_SECTOR; i++)
            p[s * VBLK_SECTOR + i] = (uint8_t)((sector + s) * 31 + i * 7 + 0x5a);
}

static int show_id(struct vblk *b)
{
    char *id = virtio_alloc(32, 64);
    int st = vblk_request(b, VBLK_T_GET_ID, 0, id, 20);
    if (st != VBLK_S_OK) {
        printf("virtio-blk: GET_ID failed: %s\n", st < 0 ? virtio_strerror(st) : st == 2 ? "unsupported" : "ioerr");
        return 1;
    }
    id[20] = '\0';
    printf("virtio-blk: id '%s'\n", id);
    return 0;
}

static int write_check(struct vblk *b, uint64_t sector, uint32_t count, uint8_t *buf)
{
    pattern(buf, sector, count);
    int st = vblk_request(b, VBLK_T_OUT, sector, buf, count * VBLK_SECTOR);
    printf("virtio-blk: write sectors %lu..%lu: status %d%s\n", (unsigned long)sector,
           (unsigned long)(sector + count - 1), st, st < 0 ? virtio_strerror(st) : "");
    if (st != VBLK_S_OK)
        return 1;
    memset(buf, 0, count * VBLK_SECTOR);
    st = vblk_request(b, VBLK_T_IN, sector, buf, count * VBLK_SECTOR);
    uint8_t *want = virtio_alloc(count * VBLK_SECTOR, 64);
    pattern(want, sector, count);
    if (st != VBLK_S_OK || memcmp(buf, want, count * VBLK_SECTOR) != 0) {
        printf("virtio-blk: read-back MISMATCH (status %d)\n", st);
        return 1;
    }
    printf("virtio-blk: read-back ok, fnv1a 0x%lx\n", (unsigned long)fnv1a(buf, count * VBLK_SECTOR));
    return 0;
}

/*
 * hostile=1 (after write=1, no flush): the guest turns hostile while its writes may still sit in the VMM's
 * deferred image metadata. A 1-byte write to reserved ACPI PM offset 7 (port 0x607 on Kiln; once a VMM abort) and
 * a request with a zero-length header (the device must set NEEDS_RESET); then a reset, a fresh set-up and the same
 * sectors read back. Whatever the guest did, what it wrote must reach the image when the VMM exits.
 */
static int hostile_check(struct vblk *b, uint64_t sector, uint32_t count, uint8_t *buf)
{
    outb(0x5a, 0x607);
    struct virtq *q = &b->dev.vq[0];
    uint8_t *data = virtio_alloc(VBLK_SECTOR, 4096);
    struct virtio_buf bad[3] = {
        { (uintptr_t)b->hdr, 0, false }, { (uintptr_t)data, VBLK_SECTOR, true }, { (uintptr_t)b->status, 1, true },
    };
    uint16_t old = q->avail_idx;
    int head = virtq_add(q, bad, 3, false);
    if (head < 0)
        return 1;
    virtq_publish(q, (uint16_t)head);
    virtq_kick(&b->dev, q, old);
    int st = virtq_poll(&b->dev, q, b->dev.timeout_us, NULL);
    printf("virtio-blk: request with a zero-length header: %s\n",
           st == VIRTIO_ENEEDS_RESET ? "needs reset" : st < 0 ? virtio_strerror(st) : "completed");
    if (st != VIRTIO_ENEEDS_RESET || vblk_setup(b) < 0)
        return 1;
    uint8_t *want = virtio_alloc(count * VBLK_SECTOR, 64);
    pattern(want, sector, count);
    st = vblk_request(b, VBLK_T_IN, sector, buf, count * VBLK_SECTOR);
    bool same = st == VBLK_S_OK && memcmp(buf, want, count * VBLK_SECTOR) == 0;
    printf("virtio-blk: after the faults: read-back %s\n", same ? "ok" : "MISMATCH");
    return same ? 0 : 1;
}

static int ro_check(struct vblk *b, uint64_t sector, uint8_t *buf)
{
    pattern(buf, sector, 1);
    int st = vblk_request(b, VBLK_T_OUT, sector, buf, VBLK_SECTOR);
    printf("virtio-blk: ro write status %d (%s)%s\n", st,
           st == VBLK_S_IOERR ? "IOERR, as expected" : st < 0 ? virtio_strerror(st) : "unexpected",
           (b->dev.features & VBLK_F_RO) ? ", device offers RO" : ", device does not offer RO");
    return st == VBLK_S_IOERR ? 0 : 1;
}

static void rate(const char *what, uint64_t bytes, uint64_t ops, uint64_t cycles)
{
    uint64_t us = cycles / (tsc_hz() / 1000000);
    if (!us)
        us = 1;
    uint64_t mbs100 = bytes * 100 / us;
    printf("virtio-blk: bench %s: %lu bytes %lu requests %lu cycles %lu us: %lu.%02lu MB/s %lu IOPS\n", what,
           (unsigned long)bytes, (unsigned long)ops, (unsigned long)cycles, (unsigned long)us,
           (unsigned long)(mbs100 / 100), (unsigned long)(mbs100 % 100), (unsigned long)(ops * 1000000 / us));
}

/* Sequential reads with qd requests in flight, each slot with its own buffer; returns 0 or a failure. */
static int seq_read_qd(struct vblk *b, uint64_t reqs, uint64_t req_kib, unsigned qd)
{
    struct virtq *q = &b->dev.vq[0];
    uint8_t *bufs = virtio_alloc(qd * req_kib * 1024, 4096);
    int slot_of[VIRTIO_QUEUE_SIZE];
    if (!bufs)
        return 1;
    uint64_t sectors = req_kib * 2, sector = 0, issued = 0, done = 0;
    uint64_t t0 = rdtsc();
    uint16_t old = q->avail_idx;
    for (unsigned s = 0; s < qd && issued < reqs; s++, issued++) {
        if (sector + sectors > b->capacity)
            sector = 0;
        int head = vblk_submit(b, s, VBLK_T_IN, sector, bufs + s * req_kib * 1024, (uint32_t)(req_kib * 1024));
        if (head < 0 || head >= VIRTIO_QUEUE_SIZE) {
            printf("virtio-blk: bench qd submit failed: %d\n", head);
            return 1;
        }
        slot_of[head] = (int)s;
        sector += sectors;
    }
    virtq_kick(&b->dev, q, old);
    while (done < reqs) {
        uint32_t len;
        int id = virtq_poll(&b->dev, q, b->dev.timeout_us, &len);
        if (id < 0 || id >= VIRTIO_QUEUE_SIZE) {
            printf("virtio-blk: bench qd wait failed: %d\n", id);
            return 1;
        }
        unsigned s = (unsigned)slot_of[id];
        if (vblk_slot_status(b, s) != VBLK_S_OK) {
            printf("virtio-blk: bench qd read failed: status %u\n", vblk_slot_status(b, s));
            return 1;
        }
        done++;
        if (issued < reqs) {
            if (sector + sectors > b->capacity)
                sector = 0;
            old = q->avail_idx;
            int head = vblk_submit(b, s, VBLK_T_IN, sector, bufs + s * req_kib * 1024, (uint32_t)(req_kib * 1024));
            if (head < 0 || head >= VIRTIO_QUEUE_SIZE) {
                printf("virtio-blk: bench qd submit failed: %d\n", head);
                return 1;
            }
            slot_of[head] = (int)s;
            virtq_kick(&b->dev, q, old);
            sector += sectors;
            issued++;
        }
    }
    char what[24];
    snprintf(what, sizeof(what), "seq-read-qd%u", qd);
    rate(what, reqs * req_kib * 1024, reqs, rdtsc() - t0);
    return 0;
}

static int bench(struct vblk *b, const char *cmdline)
{
    uint64_t mib = arg_u64(cmdline, "mib", 16), req_kib = arg_u64(cmdline, "req", 64);
    uint64_t ops = arg_u64(cmdline, "ops", 1000);
    if (req_kib == 0 || req_kib > 1024 || b->capacity < 16) {
        puts("virtio-blk: bench: req must be 1..1024 KiB and the disk at least 8 KiB");
        return 1;
    }
    uint8_t *buf = virtio_alloc(req_kib * 1024, 4096);
    if (!buf)
        return 1;
    printf("virtio-blk: bench tsc %lu Hz\n", (unsigned long)tsc_hz());
    uint64_t reqs = mib * 1024 / req_kib, sectors = req_kib * 2, sector = 0;
    uint64_t t0 = rdtsc();
    for (uint64_t i = 0; i < reqs; i++) {
        if (sector + sectors > b->capacity)
            sector = 0;
        int st = vblk_request(b, VBLK_T_IN, sector, buf, (uint32_t)(req_kib * 1024));
        if (st != VBLK_S_OK) {
            printf("virtio-blk: bench read failed at sector %lu: %d\n", (unsigned long)sector, st);
            return 1;
        }
        sector += sectors;
    }
    rate("seq-read", reqs * req_kib * 1024, reqs, rdtsc() - t0);
    uint64_t qd = arg_u64(cmdline, "qd", 0);
    if (qd > VBLK_MAX_QD) {
        printf("virtio-blk: bench: qd must be 2..%u\n", VBLK_MAX_QD);
        return 1;
    }
    if (qd > 1 && seq_read_qd(b, reqs, req_kib, (unsigned)qd))
        return 1;

    uint64_t x = 0x9e3779b97f4a7c15ull, slots = b->capacity / 8;
    t0 = rdtsc();
    for (uint64_t i = 0; i < ops; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int st = vblk_request(b, VBLK_T_IN, (x % slots) * 8, buf, 4096);
        if (st != VBLK_S_OK) {
            printf("virtio-blk: bench random read failed: %d\n", st);
            return 1;
        }
    }
    rate("rand-read-4k", ops * 4096, ops, rdtsc() - t0);
    if (!arg_u64(cmdline, "wbench", 0))
        return 0;

    for (uint64_t i = 0; i < req_kib * 1024; i++)
        buf[i] = (uint8_t)(i * 13 + 7);
    sector = 0;
    t0 = rdtsc();
    for (uint64_t i = 0; i < reqs; i++) {
        if (sector + sectors > b->capacity)
            sector = 0;
        int st = vblk_request(b, VBLK_T_OUT, sector, buf, (uint32_t)(req_kib * 1024));
        if (st != VBLK_S_OK) {
            printf("virtio-blk: bench write failed at sector %lu: %d\n", (unsigned long)sector, st);
            return 1;
        }
        sector += sectors;
    }
    rate("seq-write", reqs * req_kib * 1024, reqs, rdtsc() - t0);

    x = 0x2545f4914f6cdd1dull;
    t0 = rdtsc();
    for (uint64_t i = 0; i < ops; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int st = vblk_request(b, VBLK_T_OUT, (x % slots) * 8, buf, 4096);
        if (st != VBLK_S_OK) {
            printf("virtio-blk: bench random write failed: %d\n", st);
            return 1;
        }
    }
    rate("rand-write-4k", ops * 4096, ops, rdtsc() - t0);
    return 0;
}

int test_virtio_blk(const char *cmdline)
{
    struct vblk *b = virtio_alloc(sizeof(struct vblk), 64);
    if (!b || vblk_open(b, cmdline) < 0)
        return 1;
    int fails = 0;
    uint64_t nread = arg_u64(cmdline, "nread", 8), sector = arg_u64(cmdline, "sector", 8);
    uint64_t count = arg_u64(cmdline, "count", 1);
    if (nread > b->capacity)
        nread = b->capacity;
    if (nread > 2048 || count == 0 || count > 2048 || sector + count > b->capacity) {
        puts("virtio-blk: nread/count must be 1..2048 and sector+count within the disk");
        return 1;
    }
    uint8_t *buf = virtio_alloc((nread > count ? nread : count) * VBLK_SECTOR, 4096);
    if (!buf)
        return 1;

    if (arg_u64(cmdline, "id", 0))
        fails += show_id(b);
    if (nread) {
        int st = vblk_request(b, VBLK_T_IN, 0, buf, (uint32_t)(nread * VBLK_SECTOR));
        if (st == VBLK_S_OK)
            printf("virtio-blk: read sectors 0..%lu fnv1a 0x%lx\n", (unsigned long)(nread - 1),
                   (unsigned long)fnv1a(buf, nread * VBLK_SECTOR));
        else
            printf("virtio-blk: read failed: %d %s\n", st, st < 0 ? virtio_strerror(st) : "");
        fails += st != VBLK_S_OK;
    }
    if (arg_u64(cmdline, "ro", 0))
        fails += ro_check(b, sector, buf);
    else if (arg_u64(cmdline, "write", 0)) {
        fails += write_check(b, sector, (uint32_t)count, buf);
        if (arg_u64(cmdline, "hostile", 0))
            fails += hostile_check(b, sector, (uint32_t)count, buf);
    }
    if (arg_u64(cmdline, "flush", 0)) {
        int st = vblk_request(b, VBLK_T_FLUSH, 0, NULL, 0);
        printf("virtio-blk: flush status %d%s\n", st, (b->dev.features & VBLK_F_FLUSH) ? "" : " (FLUSH not offered)");
        fails += st != VBLK_S_OK;
    }
    if (arg_u64(cmdline, "bench", 0))
        fails += bench(b, cmdline);
    uint8_t s = virtio_status(&b->dev);
    printf("virtio-blk: device status 0x%x%s; %s\n", s, (s & VIRTIO_S_NEEDS_RESET) ? " NEEDS_RESET" : "",
           fails ? "FAILED" : "ok");
    if (arg_u64(cmdline, "hold", 0)) {
        /* keep running so a host can read the device's counters (kiln domstats) */
        puts("virtio-blk: holding");
        for (;;)
            cpu_relax();
    }
    return fails ? 1 : 0;
}
