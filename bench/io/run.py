#!/usr/bin/env python3
"""bench/io: Kiln vs QEMU+KVM running the same ring-3 polling-driver test guest, in one run.

Block (test=virtio-blk bench=1 wbench=1): on the same raw file and on a qcow2 copy of it (qemu-img convert, so the
same image for both VMMs, re-made before every run because the runs write to it), sequential reads and writes in
`req` KiB requests and 4 KiB random reads and writes, one request in flight; plus the host's own read speed of the
file as the limit. --fresh-qcow2 adds an empty qcow2 of the same size (every write allocates a cluster).

Net (test=virtio-net bench=1): in a network namespace this script creates, a tap with 10.0.2.1/24 on the host
side; the guest sends `frames` UDP frames of 60 and 1514 bytes (TX, the ring kept full) to the discard port, where
bench/io/netpeer.c holds a socket that drops them, then asks netpeer for as many of each size and counts what arrives
(RX). QEMU uses -device virtio-net-pci on the same tap (vhost off, its default for -netdev tap). Also reported: the
device-side CPU per frame (the VMM's threads other than its vCPU, from /proc, after start-up).

Each configuration runs --rounds times, interleaved (Kiln, QEMU, Kiln, ...), and the median is reported (and the best
round: other load only ever slows a run down), with the
load average. The guest measures with its TSC."""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GUEST = os.path.join(ROOT, "guest", "build", "testguest.elf")
KILN = os.path.join(ROOT, ".kiln-build", "kiln")
PEER_C = os.path.join(ROOT, "bench", "io", "netpeer.c")
PEER_BIN = "/tmp/kiln-bench-netpeer"
BLK_RATE = re.compile(r"bench (\S+): .* ([0-9.]+) MB/s ([0-9]+) IOPS")
NET_RATE = re.compile(r"net: bench (\S+): \d+ frames \d+ bytes \d+ us: ([0-9]+) pps ([0-9.]+) MB/s")
NET_ARRIVED = re.compile(r"net: bench (\S+): (\d+) of (\d+) frames arrived")
PEER_RATE = re.compile(r"peer: sent (\d+) frames of (\d+) bytes in \S+ s: (\d+) pps")
RAW = "/tmp/kiln-bench-io.img"
QCOW2 = "/tmp/kiln-bench-io.qcow2"
NS = "kiln-bench-io"
TAP = "kbio0"

BLK_METRICS = [("seq-read", "MB/s"), ("seq-read-qd", "MB/s"), ("rand-read-4k", "IOPS"), ("seq-write", "MB/s"),
               ("rand-write-4k", "IOPS")]


def load():
    return os.getloadavg()[0]


NICE = []  # set in main: both VMMs (and the net peer) run at the same raised priority


def run(argv, timeout=900):
    p = subprocess.run(NICE + argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return p.stdout + p.stderr


def qemu_base(cmdline):
    return ["qemu-system-x86_64", "-enable-kvm", "-M", "pc", "-m", "256", "-kernel", GUEST, "-append", cmdline,
            "-device", "isa-debug-exit,iobase=0xf4,iosize=4", "-display", "none", "-serial", "stdio",
            "-nodefaults", "-no-reboot",
            "-name", "bench,debug-threads=on"]  # names the vCPU thread "CPU 0/KVM" (device-side CPU leaves it out)


# ---------------------------------------------------------------- block

def blk_cmdline(a):
    return f"test=virtio-blk transport=pci bench=1 wbench=1 nread=0 mib={a.mib * a.passes} req={a.req} ops={a.ops} qd={a.qd}"


def blk_run(a, vmm, disk, fmt):
    if vmm == "kiln":
        out = run([KILN, "run", "--kernel", GUEST, "--memory", "256M", "--disk", f"{disk},format={fmt}",
                   "--cmdline", blk_cmdline(a)])
    else:
        out = run(qemu_base(blk_cmdline(a)) + ["-drive", f"file={disk},format={fmt},if=none,id=d0",
                                               "-device", "virtio-blk-pci,drive=d0,disable-legacy=on"])
    rates = {m.group(1): (float(m.group(2)), int(m.group(3))) for m in BLK_RATE.finditer(out)}
    if f"seq-read-qd{a.qd}" in rates:
        rates["seq-read-qd"] = rates.pop(f"seq-read-qd{a.qd}")
    if any(name not in rates for name, _ in BLK_METRICS):
        sys.exit(f"bench/io: no block bench result from {vmm} on {fmt}:\n{out[-2000:]}")
    return {name: rates[name][0 if unit == "MB/s" else 1] for name, unit in BLK_METRICS}


def prepare_image(kind):
    """The image a block run uses, re-made each time since the runs write to it."""
    if kind == "raw":
        return RAW, "raw"
    if os.path.exists(QCOW2):
        os.remove(QCOW2)
    if kind == "qcow2":
        subprocess.run(["qemu-img", "convert", "-O", "qcow2", RAW, QCOW2], check=True)
    else:  # qcow2-new: empty, same size: reads are of unallocated clusters, every write allocates
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", QCOW2, str(os.path.getsize(RAW))], check=True)
    subprocess.run(["sync"], check=True)
    return QCOW2, "qcow2"


def host_read_mbs(path, req_kib, passes):
    """The host reading the same (page-cached) file in the same request size and volume, into one reused buffer
    (as a guest driver does): the ceiling for any VMM."""
    size = os.path.getsize(path)
    buf = bytearray(req_kib * 1024)
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buf):
            pass  # warm the page cache, as the guests' runs do
        start = time.monotonic()
        done = 0
        for _ in range(passes):
            f.seek(0)
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                done += n
        return done / (time.monotonic() - start) / 1e6


def block_bench(a):
    if not os.path.exists(RAW) or os.path.getsize(RAW) != a.mib << 20:
        with open(RAW, "wb") as f:
            f.write(os.urandom(a.mib << 20))
    kinds = ["raw", "qcow2"] + (["qcow2-new"] if a.fresh_qcow2 else [])
    vmms = ["kiln"] + ([] if a.no_qemu else ["qemu"])
    samples = {(v, k): [] for v in vmms for k in kinds}
    host = []
    loads = []
    for r in range(a.rounds):
        host.append(host_read_mbs(RAW, a.req, a.passes))
        for kind in kinds:
            for vmm in vmms:
                disk, fmt = prepare_image(kind)
                loads.append(load())
                samples[(vmm, kind)].append(blk_run(a, vmm, disk, fmt))
                if a.verbose:
                    print(f"  round {r} {vmm} {kind}: {samples[(vmm, kind)][-1]} load {loads[-1]:.2f}", flush=True)
    med = {key: {m: statistics.median(s[m] for s in runs) for m, _ in BLK_METRICS} for key, runs in samples.items()}
    best = {key: {m: max(s[m] for s in runs) for m, _ in BLK_METRICS} for key, runs in samples.items()}
    host_mbs = statistics.median(host)
    print(f"\nbench/io block: {a.mib} MiB file read and written {a.passes}x sequentially in {a.req} KiB requests, "
          f"{a.ops} random 4 KiB requests, "
          f"virtio-pci, one request in flight (seq-read-qd: {a.qd}); median of {a.rounds} rounds; load average "
          f"{min(loads):.2f}..{max(loads):.2f}")
    cols = [(v, k) for k in kinds for v in vmms]
    print(f"{'median':<18}" + "".join(f"{v + ' ' + k:>16}" for v, k in cols))
    for m, unit in BLK_METRICS:
        print(f"{m + ' ' + unit:<18}" + "".join(f"{med[c][m]:>16.1f}" for c in cols))
    print(f"{'best of ' + str(a.rounds):<18}" + "".join(f"{v + ' ' + k:>16}" for v, k in cols))
    for m, unit in BLK_METRICS:
        print(f"{m + ' ' + unit:<18}" + "".join(f"{best[c][m]:>16.1f}" for c in cols))
    print(f"host read of the file: {host_mbs:.1f} MB/s ({a.req} KiB reads, page cache)")
    print(f"Kiln raw seq-read / host read: {med[('kiln', 'raw')]['seq-read'] / host_mbs:.3f} (one request in flight), "
          f"{med[('kiln', 'raw')]['seq-read-qd'] / host_mbs:.3f} ({a.qd} in flight)")
    for title, table in (("median", med), ("best", best)):
        block_ratios(a, title, table)


def block_ratios(a, title, med):
    ratios = []
    for m, _ in BLK_METRICS:
        row = [m]
        row.append(med[("kiln", "qcow2")][m] / med[("kiln", "raw")][m])
        if not a.no_qemu:
            row.append(med[("qemu", "qcow2")][m] / med[("qemu", "raw")][m])
            row.append(med[("kiln", "raw")][m] / med[("qemu", "raw")][m])
            row.append(med[("kiln", "qcow2")][m] / med[("qemu", "qcow2")][m])
            if a.fresh_qcow2:
                row.append(med[("kiln", "qcow2-new")][m] / med[("qemu", "qcow2-new")][m])
        ratios.append(row)
    heads = ["Kiln qcow2/raw"] + ([] if a.no_qemu else ["QEMU qcow2/raw", "Kiln/QEMU raw", "Kiln/QEMU qcow2"]
                                    + (["Kiln/QEMU new"] if a.fresh_qcow2 else []))
    print(f"{'ratios, ' + title:<18}" + "".join(f"{h:>17}" for h in heads))
    for row in ratios:
        print(f"{row[0]:<18}" + "".join(f"{x:>17.3f}" for x in row[1:]))


# ---------------------------------------------------------------- net

def sh(*argv, check=True):
    return subprocess.run(argv, check=check, capture_output=True, text=True)


def net_setup():
    sh("ip", "netns", "del", NS, check=False)
    sh("ip", "netns", "add", NS)
    sh("ip", "-n", NS, "tuntap", "add", "dev", TAP, "mode", "tap", "vnet_hdr")
    sh("ip", "-n", NS, "addr", "add", "10.0.2.1/24", "dev", TAP)
    sh("ip", "-n", NS, "link", "set", TAP, "up")
    sh("ip", "-n", NS, "link", "set", "lo", "up")


def net_run(a, vmm):
    cmdline = (f"test=virtio-net transport=pci ip=10.0.2.15 peer=10.0.2.1 bench=1 frames={a.frames}"
               + (" event_idx=1" if a.event_idx else "") + {"tx": " rx=0", "rx": " tx=0"}.get(a.only, ""))
    peer = subprocess.Popen(NICE + ["ip", "netns", "exec", NS, PEER_BIN, "10.0.2.1", "60"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peer.stdout.readline()  # "peer: ready"
    try:
        if vmm == "kiln":
            argv = [KILN, "run", "--kernel", GUEST, "--memory", "64M", "--net", f"tap={TAP}", "--cmdline", cmdline]
        else:
            argv = qemu_base(cmdline) + ["-netdev", f"tap,id=n0,ifname={TAP},script=no,downscript=no",
                                         "-device", "virtio-net-pci,netdev=n0,disable-legacy=on"]
        out, cpu = run_sampled(["ip", "netns", "exec", NS] + argv, 300, "arp reply from")
    finally:
        peer.kill()
        peer_out = peer.stdout.read()
        peer.wait()
    rates = {m.group(1): (int(m.group(2)), float(m.group(3))) for m in NET_RATE.finditer(out)}
    arrived = {m.group(1): int(m.group(2)) / int(m.group(3)) for m in NET_ARRIVED.finditer(out)}
    sent = {int(m.group(2)): int(m.group(3)) for m in PEER_RATE.finditer(peer_out)}
    names = net_names(a)
    if any(n not in rates for n in names):
        sys.exit(f"bench/io: no net bench result from {vmm}:\n{out[-2000:]}\n{peer_out}")
    moved = sum(a.frames if n.startswith("tx") else round(arrived.get(n, 0) * a.frames) for n in names)
    return {n: rates[n] for n in names}, arrived, sent, cpu / max(moved, 1) * 1e6


VCPU_THREAD = re.compile(r"^(vcpu\d+|CPU \d+/KVM)$")  # Kiln's and QEMU's vCPU thread names


def thread_cpu(pid):
    """Seconds on CPU per thread of pid ({tid: (name, seconds)}), from schedstat (ns, not clock ticks)."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                out[tid] = (name, int(f.read().split()[0]) / 1e9)
        except (OSError, ValueError, IndexError):
            pass
    return out


def run_sampled(argv, timeout, start_marker):
    """Like run(), and also returns the CPU seconds that the VMM's threads other than its vCPUs (I/O threads, main
    loop, runtime) used from the first output line containing start_marker to the end (start-up left out), from /proc
    every 20 ms. The polling guest's vCPU is busy all the time in both VMMs, so it is left out too."""
    p = subprocess.Popen(NICE + argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         text=True)
    seen, start = {}, {}
    done = threading.Event()

    def sample():
        while not done.wait(0.02):
            seen.update(thread_cpu(p.pid))

    def device_side(cpu):
        return sum(sec for name, sec in cpu.values() if not VCPU_THREAD.match(name))

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    timer = threading.Timer(timeout, p.kill)
    timer.start()
    lines = []
    try:
        for line in p.stdout:
            lines.append(line)
            if not start and start_marker in line:
                start.update(thread_cpu(p.pid))
        p.wait()
    finally:
        timer.cancel()
        done.set()
        t.join()
    return "".join(lines), device_side(seen) - device_side(start)


def net_names(a):
    return [f"{d}-{size}" for d in ("tx", "rx") if a.only in (None, d) for size in (60, 1514)]


def build_peer():
    """The RX sender in C (sendmmsg): Python's ~200k datagrams/s capped the RX measurement."""
    subprocess.run(["gcc", "-O2", "-Wall", "-o", PEER_BIN, PEER_C], check=True)


def net_bench(a):
    build_peer()
    net_setup()
    vmms = ["kiln"] + ([] if a.no_qemu else ["qemu"])
    samples = {v: [] for v in vmms}
    arrived = {v: [] for v in vmms}
    cpu_per_frame = {v: [] for v in vmms}
    peer = []
    loads = []
    try:
        for r in range(a.rounds):
            for vmm in vmms:
                loads.append(load())
                rates, got, sent, us = net_run(a, vmm)
                cpu_per_frame[vmm].append(us)
                samples[vmm].append(rates)
                arrived[vmm].append(got)
                peer.append(sent)
                if a.verbose:
                    print(f"  round {r} {vmm}: {rates} arrived {got} device-side CPU {us:.2f} us/frame "
                          f"load {loads[-1]:.2f}", flush=True)
    finally:
        sh("ip", "netns", "del", NS, check=False)
    names = net_names(a)
    med = {v: {n: (statistics.median(s[n][0] for s in samples[v]), statistics.median(s[n][1] for s in samples[v]))
               for n in names} for v in vmms}
    best = {v: {n: max(s[n] for s in samples[v]) for n in names} for v in vmms}
    print(f"\nbench/io net: {a.frames} UDP frames per test through a tap in a network namespace, virtio-pci"
          f"{', EVENT_IDX' if a.event_idx else ', no EVENT_IDX'}; median of {a.rounds} rounds; load average "
          f"{min(loads):.2f}..{max(loads):.2f}")
    print(f"{'':<10}" + "".join(f"{v + ' pps':>14}{v + ' MB/s':>14}" for v in vmms)
          + ("" if a.no_qemu else f"{'Kiln/QEMU pps':>16}"))
    for title, table in (("median", med), ("best", best)):
        print(title)
        for n in names:
            line = f"{n:<10}" + "".join(f"{table[v][n][0]:>14.0f}{table[v][n][1]:>14.1f}" for v in vmms)
            if not a.no_qemu:
                line += f"{table['kiln'][n][0] / table['qemu'][n][0]:>16.3f}"
            print(line)
    for v in vmms:
        got = {n: statistics.median(x.get(n, 0) for x in arrived[v]) for n in names if n.startswith("rx")}
        print(f"{v}: RX frames that arrived (median share of those sent): "
              + ", ".join(f"{n} {got[n]:.2f}" for n in got))
    print("host CPU outside the vCPU threads per frame moved (median; from the guest's first frame exchange on): "
          + ", ".join(f"{v} {statistics.median(cpu_per_frame[v]):.2f} us" for v in vmms))
    for size in (60, 1514):
        rates = [p[size] for p in peer if size in p]
        if rates:
            print(f"host sender (netpeer) rate, {size}-byte frames: median {statistics.median(rates):.0f} pps "
                  f"(the RX ceiling)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mib", type=int, default=128, help="the file's size")
    ap.add_argument("--qd", type=int, default=4,
                    help="requests in flight for the seq-read-qd row (the other rows keep one in flight)")
    ap.add_argument("--passes", type=int, default=8,
                    help="sequential passes over the file per run (a single 128 MiB pass lasts ~10 ms: start-up, "
                         "not throughput)")
    ap.add_argument("--req", type=int, default=128, help="sequential request size in KiB")
    ap.add_argument("--ops", type=int, default=10000, help="4 KiB random reads, and as many random writes")
    ap.add_argument("--frames", type=int, default=100000, help="frames per net test")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--fresh-qcow2", action="store_true", help="also an empty qcow2 (allocating writes)")
    ap.add_argument("--no-event-idx", dest="event_idx", action="store_false",
                    help="net guest without VIRTIO_F_RING_EVENT_IDX (default: negotiated, as Linux does)")
    ap.add_argument("--only", choices=["tx", "rx"], help="net: run only one direction (the guest's tx=0 / rx=0)")
    ap.add_argument("--no-qemu", action="store_true")
    ap.add_argument("--no-block", action="store_true")
    ap.add_argument("--no-net", action="store_true")
    ap.add_argument("--nice", type=int, default=-10,
                    help="run both VMMs at this nice value (default -10, so other load disturbs both less; 0: off)")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    if a.nice:
        NICE[:] = ["nice", "-n", str(a.nice)]
    if not os.path.exists(KILN):
        sys.exit(f"bench/io: {KILN} missing: run ./kiln once to build it")
    if not a.no_qemu and shutil.which("qemu-system-x86_64") is None:
        sys.exit("bench/io: qemu-system-x86_64 not found (or pass --no-qemu)")
    if not a.no_block:
        block_bench(a)
    if not a.no_net:
        net_bench(a)


if __name__ == "__main__":
    main()
