/*
 * test=virtio-net ip=A.B.C.D peer=A.B.C.D [count=N] [mrg=1]: first virtio-net on
 * transport=pci|mmio. Posts receive buffers, ARPs for the peer (prints its MAC),
 * then sends N (default 3) ICMP echo requests and counts the replies. Answers
 * ARP requests for its own address meanwhile. Returns 0 if every echo came back.
 * Header: virtio_net_hdr_v1 (12 bytes, VERSION_1), no offloads; mrg=1 asks for
 * MRG_RXBUF and checks num_buffers == 1 (buffers hold a whole frame).
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
    unsigned nrx = n->dev->vq[0].size < RX_BUFS ? n->dev->vq[0].size : RX_BUFS;
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
