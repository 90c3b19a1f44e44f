/*
 * test=virtio-console [wait=SECONDS]: first virtio-console, port 0 only (no
 * MULTIPORT). Writes a line to transmitq, then echoes whatever arrives on
 * receiveq back to transmitq (and to COM1 as hex) until a 'q' arrives or
 * wait seconds (default 30) pass without one.
 */
#include "tests.h"
#include "virtio.h"

#define RXQ     0
#define TXQ     1
#define RX_BUFS 8
#define RX_LEN  64

static int send(struct virtio_dev *d, const void *p, uint32_t n, uint8_t *txbuf)
{
    memcpy(txbuf, p, n);
    struct virtio_buf b = { (uintptr_t)txbuf, n, false };
    int r = virtio_transfer(d, &d->vq[TXQ], &b, 1);
    if (r < 0)
        printf("virtio-console: transmit failed: %s\n", virtio_strerror(r));
    return r;
}

/* Receive buffer i belongs to descriptor i; virtq_add takes free_head as the head. */
static int post_rx(struct virtq *rq, uint8_t *rx)
{
    struct virtio_buf b = { (uintptr_t)rx + (size_t)rq->free_head * RX_LEN, RX_LEN, true };
    return virtq_add(rq, &b, 1, false);
}

int test_virtio_console(const char *cmdline)
{
    struct virtio_dev *d = virtio_alloc(sizeof(*d), 64);
    int err = virtio_find(d, cmdline, VIRTIO_ID_CONSOLE, 0);
    if (err < 0) {
        printf("virtio-console: no device found (%s)\n", virtio_strerror(err));
        return 1;
    }
    if ((err = virtio_setup(d, virtio_opt_features(cmdline), 2, 0)) < 0) {
        printf("virtio-console: %s: setup failed: %s\n", d->where, virtio_strerror(err));
        return 1;
    }
    printf("virtio-console: %s features 0x%lx queues %u/%u\n", d->where, (unsigned long)d->features,
           d->vq[RXQ].size, d->vq[TXQ].size);

    uint8_t *rx = virtio_alloc((size_t)VIRTIO_QUEUE_SIZE * RX_LEN, 4096), *tx = virtio_alloc(256, 64);
    struct virtq *rq = &d->vq[RXQ];
    for (unsigned i = 0; i < RX_BUFS; i++) {
        if (post_rx(rq, rx) < 0)
            return 1;
    }
    virtq_kick(d, rq, 0);

    static const char hello[] = "kiln virtio-console: type something, 'q' ends\r\n";
    if (send(d, hello, sizeof(hello) - 1, tx) < 0)
        return 1;
    puts("virtio-console: hello sent, echoing");

    uint64_t wait = tsc_hz() * arg_u64(cmdline, "wait", 30), start = rdtsc(), total = 0;
    bool quit = false;
    while (!quit) {
        uint32_t len;
        int id = virtq_get_used(rq, &len);
        if (id < 0) {
            if (rdtsc() - start > wait) {
                printf("virtio-console: no 'q' within the wait (%lu bytes seen)\n", (unsigned long)total);
                return 1;
            }
            if (virtio_status(d) & VIRTIO_S_NEEDS_RESET) {
                puts("virtio-console: device needs reset");
                return 1;
            }
            delay_us(100);
            continue;
        }
        if (id >= VIRTIO_QUEUE_SIZE || len > RX_LEN) {
            printf("virtio-console: bad used element id %d len %u\n", id, len);
            return 1;
        }
        uint8_t *p = rx + (size_t)id * RX_LEN;
        printf("virtio-console: rx %u bytes:", len);
        for (uint32_t i = 0; i < len; i++) {
            printf(" %02x", p[i]);
            quit |= p[i] == 'q';
        }
        putchar('\n');
        total += len;
        if (len && send(d, p, len, tx) < 0)
            return 1;
        uint16_t old = rq->avail_idx;       /* hand the buffer back */
        post_rx(rq, rx);
        virtq_kick(d, rq, old);
    }
    printf("virtio-console: got 'q', %lu bytes echoed; ok\n", (unsigned long)total);
    return 0;
}
