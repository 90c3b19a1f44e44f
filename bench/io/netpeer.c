/*
 * bench/io native peer for the virtio-net RX bench (the protocol the Python sender it replaced spoke; replaced because
 * Python's ~200k datagrams/s capped the measurement): runs in the bench's network namespace on the host side of
 * the tap, waits on UDP ADDR:5555 for "N SIZE" requests and answers each with N datagrams to the sender's port
 * 5556, sized so that each Ethernet frame is SIZE bytes, sent in batches with sendmmsg. A full tap queue drops
 * frames as a real wire would. Prints "peer: ready", then per request
 * "peer: sent N frames of SIZE bytes in S s: P pps". Exits after 2 requests or IDLE seconds without one.
 *
 * usage: netpeer ADDR [IDLE_SECONDS]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: netpeer ADDR [IDLE_SECONDS]\n");
        return 2;
    }
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    int sndbuf = 4 << 20;
    setsockopt(s, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    struct timeval idle = { argc > 2 ? atoi(argv[2]) : 60, 0 };
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &idle, sizeof(idle));
    struct sockaddr_in me = { .sin_family = AF_INET, .sin_port = htons(5555) };
    if (inet_pton(AF_INET, argv[1], &me.sin_addr) != 1 || bind(s, (struct sockaddr *)&me, sizeof(me)) < 0) {
        perror("netpeer: bind");
        return 1;
    }
    /* The guest's TX frames go to the discard port (9). A socket bound there that is never read takes them into
     * UDP and drops them at its queue: without it every frame also made the host build an ICMP port-unreachable
     * (two route lookups), which was most of the CPU per frame and the same for every VMM. */
    int discard = socket(AF_INET, SOCK_DGRAM, 0);
    int rcvbuf = 0;
    setsockopt(discard, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    struct sockaddr_in nine = me;
    nine.sin_port = htons(9);
    if (bind(discard, (struct sockaddr *)&nine, sizeof(nine)) < 0) {
        perror("netpeer: bind discard");
        return 1;
    }
    printf("peer: ready\n");
    fflush(stdout);
    static char payload[1514];
    memset(payload, 0xa5, sizeof(payload));
    for (int request = 0; request < 2; request++) {
        char ask[64] = { 0 };
        struct sockaddr_in from;
        socklen_t fromlen = sizeof(from);
        ssize_t n = recvfrom(s, ask, sizeof(ask) - 1, 0, (struct sockaddr *)&from, &fromlen);
        if (n < 0)
            break; /* idle */
        unsigned long frames = 0, size = 0;
        if (sscanf(ask, "%lu %lu", &frames, &size) != 2)
            continue;
        size_t len = size > 1514 ? 1514 - 42 : size > 42 ? size - 42 : 0;
        from.sin_port = htons(5556);
        struct iovec iov = { payload, len };
        struct mmsghdr msgs[BATCH];
        for (int i = 0; i < BATCH; i++)
            msgs[i] = (struct mmsghdr){ .msg_hdr = { .msg_name = &from, .msg_namelen = sizeof(from),
                                                     .msg_iov = &iov, .msg_iovlen = 1 } };
        unsigned long sent = 0, tried = 0;
        double start = now();
        while (tried < frames) {
            unsigned batch = frames - tried < BATCH ? (unsigned)(frames - tried) : BATCH;
            int k = sendmmsg(s, msgs, batch, MSG_DONTWAIT);
            if (k > 0)
                sent += (unsigned long)k;
            tried += k > 0 ? (unsigned long)k : 1; /* a full queue drops the frame, as on a wire */
        }
        double took = now() - start;
        printf("peer: sent %lu frames of %lu bytes in %.3f s: %.0f pps\n", sent, size, took, sent / took);
        fflush(stdout);
    }
    return 0;
}
