/*
 * test=virtio-net ip=A.B.C.D peer=A.B.C.D [count=N] [mrg=1]: first virtio-net on
 * transport=pci|mmio. Posts receive buffers, ARPs for the peer (prints its MAC),
 * then sends N (default 3) ICMP echo requests and counts the replies. Answers
 * ARP requests for its own address meanwhile. Returns 0 if every echo came back.
 * Header: virtio_net_hdr_v1 (12 bytes, VERSION_1), no offloads; mrg=1 asks for
 * MRG_RXBUF and checks num_buffers == 1 (buffers hold a whole frame).
 * bench=1 [frames=N]: instead of pinging, measures throughput (bench/io): TX of
 * N UDP frames of 60 and of 1514 bytes to the peer's discard port with the ring
 * kept full, then RX: asks the peer (a sender on UDP port 5555) for N frames of
 * each size and counts what arrives on port 5556 until N or a 300 ms gap.
 * tx=0 / rx=0 leave out that half (to profile one direction).
 */
#include "tests.h"
#include "virtio.h"

#define NET_F_MAC       (1ull << 5)
#define NET_F_MRG_RXBUF (1ull << 15)
#define NET_HDR         12
#define RX_BUFS         16
#define RX_BUF_SIZE     2048
#define FRAME_MAX       1514

struct net {
    struct virtio_dev *dev;
    uint8_t mac[6];
    uint32_t ip, peer;              /* host byte order */
    uint8_t *rx[VIRTIO_QUEUE_SIZE]; /* buffer behind each RX head */
    uint8_t *tx;
    uint8_t peer_mac[6];
    bool have_peer;
    unsigned bad_num_buffers;
};

static bool parse_ip(const char *s, uint32_t *out)
{
    uint32_t ip = 0;
    for (int part = 0; part < 4; part++) {
        if (!s || *s < '0' || *s > '9')
            return false;
        uint32_t v = 0;
        while (*s >= '0' && *s <= '9')
            v = v * 10 + (uint32_t)(*s++ - '0');
        if (v > 255 || (part < 3 && *s++ != '.'))
            return false;
        ip = ip << 8 | v;
    }
    *out = ip;
    return *s == '\0' || *s == ' ' || *s == '"';
}

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)(v >> 16)); put16(p + 2, (uint16_t)v); }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get32(const uint8_t *p) { return (uint32_t)get16(p) << 16 | get16(p + 2); }

/* RFC 1071 ones' complement sum, returned ready to store big-endian. */
static uint16_t inet_csum(const uint8_t *p, size_t n)
{
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < n; i += 2)
        sum += get16(p + i);
    if (n & 1)
        sum += (uint32_t)p[n - 1] << 8;
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

static int post_rx(struct net *n, uint8_t *buf)
{
    struct virtq *q = &n->dev->vq[0];
    uint16_t old = q->avail_idx;
    struct virtio_buf b = { (uintptr_t)buf, RX_BUF_SIZE, true };
    int head = virtq_add(q, &b, 1, false);
    if (head < 0)
        return head;
    n->rx[head] = buf;
    virtq_kick(n->dev, q, old);
    return 0;
}

/* Sends the frame at n->tx + NET_HDR of len bytes (header zeroed: no offloads). */
static int send_frame(struct net *n, size_t len)
{
    memset(n->tx, 0, NET_HDR);
    if (len < 60) {
        memset(n->tx + NET_HDR + len, 0, 60 - len);
        len = 60;
    }
    struct virtio_buf b = { (uintptr_t)n->tx, (uint32_t)(NET_HDR + len), false };
    int r = virtio_transfer(n->dev, &n->dev->vq[1], &b, 1);
    return r < 0 ? r : 0;
}

static uint8_t *eth_header(struct net *n, const uint8_t *dst, uint16_t type)
{
    uint8_t *f = n->tx + NET_HDR;
    memcpy(f, dst, 6);
    memcpy(f + 6, n->mac, 6);
    put16(f + 12, type);
    return f + 14;
}

static int send_arp(struct net *n, uint16_t op, const uint8_t *dst_mac, uint32_t target_ip)
{
    static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    uint8_t *a = eth_header(n, dst_mac ? dst_mac : bcast, 0x0806);
    put16(a, 1);
    put16(a + 2, 0x0800);
    a[4] = 6;
    a[5] = 4;
    put16(a + 6, op);
    memcpy(a + 8, n->mac, 6);
    put32(a + 14, n->ip);
    if (dst_mac)
        memcpy(a + 18, dst_mac, 6);
    else
        memset(a + 18, 0, 6);
    put32(a + 24, target_ip);
    return send_frame(n, 14 + 28);
}

static int send_echo(struct net *n, uint16_t seq)
{
    uint8_t *ip = eth_header(n, n->peer_mac, 0x0800);
    uint8_t *icmp = ip + 20;
    const unsigned payload = 56;
    ip[0] = 0x45;
    ip[1] = 0;
    put16(ip + 2, (uint16_t)(20 + 8 + payload));
    put16(ip + 4, seq);                 /* identification */
    put16(ip + 6, 0x4000);              /* DF */
    ip[8] = 64;
    ip[9] = 1;                          /* ICMP */
    put16(ip + 10, 0);
    put32(ip + 12, n->ip);
    put32(ip + 16, n->peer);
    put16(ip + 10, inet_csum(ip, 20));
    icmp[0] = 8;
    icmp[1] = 0;
    put16(icmp + 2, 0);
    put16(icmp + 4, 0x4b4e);            /* "KN" */
    put16(icmp + 6, seq);
    for (unsigned i = 0; i < payload; i++)
        icmp[8 + i] = (uint8_t)(i + seq);
    put16(icmp + 2, inet_csum(icmp, 8 + payload));
    return send_frame(n, 14 + 20 + 8 + payload);
}

/* What handle_frame saw. */
enum { SEEN_NOTHING, SEEN_ARP_REPLY, SEEN_ECHO_REPLY };

static int handle_frame(struct net *n, const uint8_t *f, uint32_t len, uint16_t *seq)
{
    if (len < 14)
        return SEEN_NOTHING;
    uint16_t type = get16(f + 12);
    const uint8_t *p = f + 14;
    len -= 14;
    if (type == 0x0806 && len >= 28 && get16(p) == 1 && get16(p + 2) == 0x0800 && p[4] == 6 && p[5] == 4) {
        uint16_t op = get16(p + 6);
        uint32_t spa = get32(p + 14), tpa = get32(p + 24);
        if (op == 1 && tpa == n->ip) {                  /* someone asks for us: answer */
            uint8_t sha[6];
            memcpy(sha, p + 8, 6);
            send_arp(n, 2, sha, spa);
            return SEEN_NOTHING;
        }
        if (op == 2 && spa == n->peer && tpa == n->ip) {
            memcpy(n->peer_mac, p + 8, 6);
            return SEEN_ARP_REPLY;
        }
        return SEEN_NOTHING;
    }
    if (type == 0x0800 && len >= 28 && (p[0] >> 4) == 4 && p[9] == 1) {
        unsigned ihl = (p[0] & 15u) * 4;
        uint16_t total = get16(p + 2);
        if (ihl < 20 || total > len || total < ihl + 8 || inet_csum(p, ihl) != 0)
            return SEEN_NOTHING;
        if (get32(p + 12) != n->peer || get32(p + 16) != n->ip)
            return SEEN_NOTHING;
        const uint8_t *icmp = p + ihl;
        if (icmp[0] != 0 || get16(icmp + 4) != 0x4b4e || inet_csum(icmp, total - ihl) != 0)
            return SEEN_NOTHING;
        *seq = get16(icmp + 6);
        return SEEN_ECHO_REPLY;
    }
    return SEEN_NOTHING;
}

/* Polls the RX queue until `want` is seen (with seq == *seq for echoes) or timeout_us passes. */
static int wait_for(struct net *n, int want, uint16_t expect_seq, uint64_t timeout_us)
{
    struct virtq *q = &n->dev->vq[0];
    uint64_t end = rdtsc() + timeout_us * (tsc_hz() / 1000000);
    while (rdtsc() < end) {
        if (virtio_status(n->dev) & (VIRTIO_S_NEEDS_RESET | VIRTIO_S_FAILED))
            return VIRTIO_ENEEDS_RESET;
        uint32_t len;
        int head = virtq_get_used(q, &len);
        if (head < 0) {
            __asm__ volatile("pause");
            continue;
        }
        if (head >= q->size || !n->rx[head] || len < NET_HDR || len > RX_BUF_SIZE) {
            printf("net: bad RX used element id %d len %u\n", head, len);
            return VIRTIO_EIO;
        }
        uint8_t *buf = n->rx[head];
        n->rx[head] = 0;
        if ((n->dev->features & NET_F_MRG_RXBUF) && (buf[10] | buf[11] << 8) != 1)
            n->bad_num_buffers++;
        uint16_t seq = 0;
        int seen = handle_frame(n, buf + NET_HDR, len - NET_HDR, &seq);
        int err = post_rx(n, buf);
        if (err < 0)
            return err;
        if (seen == want && (want != SEEN_ECHO_REPLY || seq == expect_seq))
            return 1;
    }
    return 0;
}

static void print_mac(const char *what, const uint8_t *m)
{
    printf("%s%02x:%02x:%02x:%02x:%02x:%02x\n", what, m[0], m[1], m[2], m[3], m[4], m[5]);
}

#define BENCH_PORT_ASK  5555
#define BENCH_PORT_RX   5556

static uint8_t *udp_frame(struct net *n, uint8_t *buf, size_t frame_len, uint16_t sport, uint16_t dport, uint16_t id)
{
    memset(buf, 0, NET_HDR);
    uint8_t *f = buf + NET_HDR;
    memcpy(f, n->peer_mac, 6);
    memcpy(f + 6, n->mac, 6);
    put16(f + 12, 0x0800);
    uint8_t *ip = f + 14, *udp = ip + 20;
    size_t ip_len = frame_len - 14;
    memset(ip, 0, 20);
    ip[0] = 0x45;
    put16(ip + 2, (uint16_t)ip_len);
    put16(ip + 4, id);
    put16(ip + 6, 0x4000);
    ip[8] = 64;
    ip[9] = 17;                         /* UDP */
    put32(ip + 12, n->ip);
    put32(ip + 16, n->peer);
    put16(ip + 10, inet_csum(ip, 20));
    put16(udp, sport);
    put16(udp + 2, dport);
    put16(udp + 4, (uint16_t)(ip_len - 20));
    put16(udp + 6, 0);                  /* no UDP checksum */
    return udp + 8;
}

static void bench_rate(const char *what, uint64_t frames, uint64_t bytes, uint64_t cycles)
{
    uint64_t us = cycles / (tsc_hz() / 1000000);
    if (!us)
        us = 1;
    uint64_t mbs100 = bytes * 100 / us;
    printf("net: bench %s: %lu frames %lu bytes %lu us: %lu pps %lu.%02lu MB/s\n", what, (unsigned long)frames,
           (unsigned long)bytes, (unsigned long)us, (unsigned long)(frames * 1000000 / us),
           (unsigned long)(mbs100 / 100), (unsigned long)(mbs100 % 100));
}

/* TX: the ring kept full of prebuilt frames; reclaimed as the device uses them, kicked per refill. */
static int bench_tx(struct net *n, uint8_t **bufs, unsigned nbufs, size_t frame_len, uint64_t frames)
{
    struct virtq *q = &n->dev->vq[1];
    unsigned next_buf = 0;
    for (unsigned i = 0; i < nbufs; i++)
        udp_frame(n, bufs[i], frame_len, 5557, 9, (uint16_t)i);
    uint64_t sent = 0, done = 0, t0 = rdtsc(), limit = t0 + 10 * tsc_hz();
    while (done < frames) {
        uint16_t old = q->avail_idx;
        while (sent < frames && q->num_free > 0) {
            struct virtio_buf b = { (uintptr_t)bufs[next_buf], (uint32_t)(NET_HDR + frame_len), false };
            int head = virtq_add(q, &b, 1, false);
            if (head < 0)
                return head;
            next_buf = (next_buf + 1) % nbufs;
            sent++;
        }
        if (q->avail_idx != old)
            virtq_kick(n->dev, q, old);
        while (virtq_get_used(q, 0) >= 0)
            done++;
        if (rdtsc() > limit) {
            printf("net: bench tx stalled after %lu of %lu frames\n", (unsigned long)done, (unsigned long)frames);
            return VIRTIO_ETIMEDOUT;
        }
        cpu_relax();
    }
    char what[16];
    snprintf(what, sizeof(what), "tx-%u", (unsigned)frame_len);
    bench_rate(what, frames, frames * frame_len, rdtsc() - t0);
    return 0;
}

/* RX: asks the peer for `frames` frames of frame_len bytes, counts those that reach BENCH_PORT_RX. */
static int bench_rx(struct net *n, size_t frame_len, uint64_t frames)
{
    struct virtq *q = &n->dev->vq[0];
    uint8_t *ask = udp_frame(n, n->tx, 14 + 20 + 8 + 24, BENCH_PORT_RX, BENCH_PORT_ASK, 1);
    snprintf((char *)ask, 24, "%lu %u", (unsigned long)frames, (unsigned)frame_len);
    if (send_frame(n, 14 + 20 + 8 + 24) < 0)
        return VIRTIO_EIO;
    uint64_t got = 0, bytes = 0, first = 0, last = 0, hz = tsc_hz();
    uint64_t deadline = rdtsc() + 3 * hz;
    while (got < frames) {
        uint64_t now = rdtsc();
        if ((got == 0 && now > deadline) || (got > 0 && now - last > hz / 1000 * 300))
            break;
        uint32_t len;
        int head = virtq_get_used(q, &len);
        if (head < 0) {
            cpu_relax();
            continue;
        }
        if (head >= q->size || !n->rx[head] || len < NET_HDR || len > RX_BUF_SIZE) {
            printf("net: bad RX used element id %d len %u\n", head, len);
            return VIRTIO_EIO;
        }
        uint8_t *buf = n->rx[head], *f = buf + NET_HDR;
        n->rx[head] = 0;
        uint32_t flen = len - NET_HDR;
        if (flen >= 42 && get16(f + 12) == 0x0800 && f[23] == 17 && get16(f + 36) == BENCH_PORT_RX) {
            if (got == 0)
                first = rdtsc();
            got++;
            bytes += flen;
            last = rdtsc();
        } else {
            uint16_t seq;
            handle_frame(n, f, flen, &seq);     /* answers ARP meanwhile */
        }
        int err = post_rx(n, buf);
        if (err < 0)
            return err;
    }
    char what[16];
    snprintf(what, sizeof(what), "rx-%u", (unsigned)frame_len);
    if (got < 2) {
        printf("net: bench %s: %lu frames arrived\n", what, (unsigned long)got);
        return VIRTIO_ETIMEDOUT;
    }
    /* first..last spans got-1 inter-arrival gaps */
    bench_rate(what, got - 1, bytes - bytes / got, last - first);
    printf("net: bench %s: %lu of %lu frames arrived\n", what, (unsigned long)got, (unsigned long)frames);
    return 0;
}

static int bench(struct net *n, const char *cmdline)
{
    uint64_t frames = arg_u64(cmdline, "frames", 100000);
    struct virtq *tq = &n->dev->vq[1];
    unsigned nbufs = tq->size;
    uint8_t **bufs = virtio_alloc(sizeof(uint8_t *) * nbufs, 64);
    for (unsigned i = 0; i < nbufs; i++)
        if (!(bufs[i] = virtio_alloc(NET_HDR + FRAME_MAX + 64, 64)))
            return 1;
    int fails = 0;
    static const size_t sizes[] = { 60, FRAME_MAX };
    bool tx = arg_u64(cmdline, "tx", 1) != 0, rx = arg_u64(cmdline, "rx", 1) != 0;
    for (unsigned s = 0; tx && s < 2; s++)
        fails += bench_tx(n, bufs, nbufs, sizes[s], frames) < 0;
    for (unsigned s = 0; rx && s < 2; s++) {
        fails += bench_rx(n, sizes[s], frames) < 0;
        /* let the rest of a burst drain before the next one */
        uint64_t quiet = rdtsc() + tsc_hz() / 10;
        uint32_t len;
        while (rdtsc() < quiet) {
            int head = virtq_get_used(&n->dev->vq[0], &len);
            if (head >= 0 && head < n->dev->vq[0].size && n->rx[head]) {
                uint8_t *buf = n->rx[head];
                n->rx[head] = 0;
                post_rx(n, buf);
            }
        }
    }
    printf("net: bench %s\n", fails ? "FAILED" : "done");
    return fails ? 1 : 0;
}

int test_virtio_net(const char *cmdline)
{
    struct net *n = virtio_alloc(sizeof(*n), 64);
    char ip[20], peer[20];
    if (!arg_get(cmdline, "ip", ip, sizeof(ip)) || !parse_ip(ip, &n->ip)
        || !arg_get(cmdline, "peer", peer, sizeof(peer)) || !parse_ip(peer, &n->peer)) {
        puts("net: usage: ip=A.B.C.D peer=A.B.C.D [count=N]");
        return 1;
    }
    uint64_t count = arg_u64(cmdline, "count", 3);
    if (count == 0 || count > 1000) {
        puts("net: count must be 1..1000");
        return 1;
    }
    n->dev = virtio_alloc(sizeof(*n->dev), 64);
    int err = virtio_find(n->dev, cmdline, VIRTIO_ID_NET, 0);
    if (err < 0) {
        printf("net: no virtio-net device found (%s)\n", virtio_strerror(err));
        return 1;
    }
    uint64_t want = NET_F_MAC | virtio_opt_features(cmdline) | (arg_u64(cmdline, "mrg", 0) ? NET_F_MRG_RXBUF : 0);
    if ((err = virtio_setup(n->dev, want, 2, 0)) < 0) {
        printf("net: %s: setup failed: %s\n", n->dev->where, virtio_strerror(err));
        return 1;
    }
    if (n->dev->features & NET_F_MAC)
        for (unsigned i = 0; i < 6; i++)
            n->mac[i] = virtio_cfg8(n->dev, i);
    else
        memcpy(n->mac, (const uint8_t[]){ 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 }, 6);
    printf("net: %s features 0x%lx queues %u/%u ", n->dev->where, (unsigned long)n->dev->features,
           n->dev->vq[0].size, n->dev->vq[1].size);
    print_mac("mac ", n->mac);

    n->tx = virtio_alloc(NET_HDR + FRAME_MAX + 64, 64);
    unsigned want_rx = arg_u64(cmdline, "bench", 0) ? VIRTIO_QUEUE_SIZE : RX_BUFS;
    unsigned nrx = n->dev->vq[0].size < want_rx ? n->dev->vq[0].size : want_rx;
    for (unsigned i = 0; i < nrx; i++)
        if ((err = post_rx(n, virtio_alloc(RX_BUF_SIZE, 64))) < 0) {
            printf("net: posting RX buffers failed: %s\n", virtio_strerror(err));
            return 1;
        }

    int got = 0;
    for (int attempt = 0; attempt < 5 && got <= 0; attempt++) {
        if ((err = send_arp(n, 1, 0, n->peer)) < 0) {
            printf("net: sending ARP request failed: %s\n", virtio_strerror(err));
            return 1;
        }
        got = wait_for(n, SEEN_ARP_REPLY, 0, 1000000);
    }
    if (got <= 0) {
        printf("net: no ARP reply from %s%s%s\n", peer, got < 0 ? ": " : "", got < 0 ? virtio_strerror(got) : "");
        return 1;
    }
    print_mac("net: arp reply from ", n->peer_mac);
    if (arg_u64(cmdline, "bench", 0))
        return bench(n, cmdline);

    uint64_t replies = 0;
    for (uint64_t i = 1; i <= count; i++) {
        if ((err = send_echo(n, (uint16_t)i)) < 0) {
            printf("net: sending echo request %lu failed: %s\n", (unsigned long)i, virtio_strerror(err));
            break;
        }
        got = wait_for(n, SEEN_ECHO_REPLY, (uint16_t)i, 1000000);
        if (got < 0) {
            printf("net: waiting for echo reply %lu: %s\n", (unsigned long)i, virtio_strerror(got));
            break;
        }
        replies += (uint64_t)got;
    }
    printf("net: %lu/%lu echo replies\n", (unsigned long)replies, (unsigned long)count);
    if (n->bad_num_buffers)
        printf("net: %u frames with num_buffers != 1\n", n->bad_num_buffers);
    return replies == count && !n->bad_num_buffers ? 0 : 1;
}
