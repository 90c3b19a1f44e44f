#!/usr/bin/env python3
"""bench/io peer for the virtio-net bench: runs inside the bench's network namespace on the host side of the tap.
Waits on UDP ADDR:5555 for "N SIZE" requests from the test guest and answers each with N datagrams to the
sender's port 5556, sized so that each Ethernet frame is SIZE bytes, as fast as it can. Prints its own send rate
(the ceiling of the RX measurement) as "peer: sent N frames in S s: P pps". Exits after --requests requests or
when no request comes for --idle seconds."""
import argparse
import socket
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("addr")
    ap.add_argument("--requests", type=int, default=2)
    ap.add_argument("--idle", type=float, default=60)
    a = ap.parse_args()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    s.bind((a.addr, 5555))
    s.settimeout(a.idle)
    print("peer: ready", flush=True)
    for _ in range(a.requests):
        try:
            data, (host, port) = s.recvfrom(64)
        except socket.timeout:
            break
        try:
            frames, size = (int(x) for x in data.split(b"\0")[0].split())
        except ValueError:
            continue
        payload = b"\xa5" * max(0, min(size, 1514) - 42)
        dest = (host, 5556)
        sendto = s.sendto
        start = time.monotonic()
        sent = 0
        for _ in range(frames):
            try:
                sendto(payload, dest)
                sent += 1
            except (BlockingIOError, OSError):
                pass  # the tap's queue is full: a dropped frame, as on a real wire
        took = time.monotonic() - start
        print(f"peer: sent {sent} frames of {size} bytes in {took:.3f} s: {sent / took:.0f} pps", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
