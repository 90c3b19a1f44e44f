/* test=virtio-rng bytes=N: read N (default 32, max 4096) bytes from the first virtio-rng, print them in hex. */
#include "tests.h"
#include "virtio.h"

int test_virtio_rng(const char *cmdline)
{
    struct virtio_dev *d = virtio_alloc(sizeof(*d), 64);
    uint64_t want = arg_u64(cmdline, "bytes", 32);
    if (want == 0 || want > 4096) {
        puts("virtio-rng: bytes must be 1..4096");
        return 1;
    }
    int err = virtio_find(d, cmdline, VIRTIO_ID_RNG, 0);
    if (err < 0) {
        printf("virtio-rng: no device found (%s)\n", virtio_strerror(err));
        return 1;
    }
    if ((err = virtio_setup(d, virtio_opt_features(cmdline), 1, 0)) < 0) {
        printf("virtio-rng: %s: setup failed: %s\n", d->where, virtio_strerror(err));
        return 1;
    }
    printf("virtio-rng: %s features 0x%lx queue %u\n", d->where, (unsigned long)d->features, d->vq[0].size);
    uint8_t *buf = virtio_alloc(want, 64);
    uint64_t got = 0;
    while (got < want) {                    /* the device may return fewer bytes than asked */
        struct virtio_buf b = { (uintptr_t)buf + got, (uint32_t)(want - got), true };
        int n = virtio_transfer(d, &d->vq[0], &b, 1);
        if (n < 0) {
            printf("virtio-rng: read failed after %lu bytes: %s\n", (unsigned long)got, virtio_strerror(n));
            return 1;
        }
        if (n == 0 || (uint64_t)n > want - got) {
            printf("virtio-rng: device returned bad length %d\n", n);
            return 1;
        }
        got += (uint64_t)n;
    }
    printf("virtio-rng: %lu bytes:", (unsigned long)got);
    bool all_equal = true;
    for (uint64_t i = 0; i < got; i++) {
        if (i % 32 == 0)
            printf("\n  ");
        printf("%02x", buf[i]);
        all_equal &= buf[i] == buf[0];
    }
    printf("\nvirtio-rng: %s\n", got > 1 && all_equal ? "all bytes equal: FAILED" : "bytes differ: ok");
    return got > 1 && all_equal ? 1 : 0;
}
