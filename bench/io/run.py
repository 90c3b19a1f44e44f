#!/usr/bin/env python3
"""bench/io: virtio-blk throughput of the ring-3 polling-driver test guest (test=virtio-blk bench=1) on the same raw
file, under Kiln and under QEMU+KVM (-device virtio-blk-pci), with the host's own read speed of the file as the
limit. Sequential reads in `req` KiB requests and 4 KiB random reads, one request in flight. Prints ratios.
The guest measures with its TSC; both VMMs run the same guest binary on the same file, in one run.
--format qcow2 also runs both VMMs on a qcow2 copy (qemu-img convert -O qcow2) and prints qcow2/raw and
Kiln/QEMU ratios for it."""
import argparse
import os
import re
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GUEST = os.path.join(ROOT, "guest", "build", "testguest.elf")
KILN = os.path.join(ROOT, ".kiln-build", "kiln")
RATE = re.compile(r"bench (\S+): .* ([0-9.]+) MB/s ([0-9]+) IOPS")


def guest_args(a):
    return f"test=virtio-blk transport={a.transport} bench=1 mib={a.mib} req={a.req} ops={a.ops}"


def run(argv):
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL).stdout
    rates = {m.group(1): (float(m.group(2)), int(m.group(3))) for m in RATE.finditer(out)}
    if "seq-read" not in rates or "rand-read-4k" not in rates:
        sys.exit(f"bench/io: no bench result from {argv[0]}:\n{out[-2000:]}")
    return rates


def kiln_run(a, disk, fmt):
    return run([KILN, "run", "--kernel", GUEST, "--memory", "256M", "--transport", a.transport,
                "--disk", f"{disk},format={fmt}", "--cmdline", guest_args(a)])


def qemu_run(a, disk, fmt):
    return run(["qemu-system-x86_64", "-enable-kvm", "-M", "pc", "-m", "256", "-kernel", GUEST,
                "-append", guest_args(a), "-device", "isa-debug-exit,iobase=0xf4,iosize=4", "-display", "none",
                "-serial", "stdio", "-nodefaults", "-no-reboot",
                "-drive", f"file={disk},format={fmt},if=none,id=d0", "-device", "virtio-blk-pci,drive=d0,disable-legacy=on"])


def qcow2_report(a, disk, raw_kiln, raw_qemu):
    image = "/tmp/kiln-bench-io.qcow2"
    if not os.path.exists(image) or os.path.getmtime(image) < os.path.getmtime(disk):
        subprocess.run(["qemu-img", "convert", "-O", "qcow2", disk, image], check=True)
    kiln = kiln_run(a, image, "qcow2")
    qemu = None if a.no_qemu else qemu_run(a, image, "qcow2")
    print(f"\nqcow2 (64 KiB clusters, qemu-img convert of the same file)")
    print(f"{'':<24}{'MB/s':>10}{'IOPS':>10}")
    rows = [("Kiln qcow2 seq", kiln["seq-read"]), ("Kiln qcow2 rand 4K", kiln["rand-read-4k"])]
    if qemu:
        rows += [("QEMU qcow2 seq", qemu["seq-read"]), ("QEMU qcow2 rand 4K", qemu["rand-read-4k"])]
    for name, (mbs, iops) in rows:
        print(f"{name:<24}{mbs:>10.1f}{iops if iops else '-':>10}")
    print(f"Kiln qcow2/raw seq:     {kiln['seq-read'][0] / raw_kiln['seq-read'][0]:.3f}")
    print(f"Kiln qcow2/raw IOPS:    {kiln['rand-read-4k'][1] / raw_kiln['rand-read-4k'][1]:.3f}")
    if qemu:
        print(f"QEMU qcow2/raw seq:     {qemu['seq-read'][0] / raw_qemu['seq-read'][0]:.3f}")
        print(f"QEMU qcow2/raw IOPS:    {qemu['rand-read-4k'][1] / raw_qemu['rand-read-4k'][1]:.3f}")
        print(f"Kiln/QEMU qcow2 seq:    {kiln['seq-read'][0] / qemu['seq-read'][0]:.3f}")
        print(f"Kiln/QEMU qcow2 IOPS:   {kiln['rand-read-4k'][1] / qemu['rand-read-4k'][1]:.3f}")


def host_read_mbs(path, req_kib):
    """The host reading the same (page-cached) file in the same request size: the ceiling for any VMM."""
    size = os.path.getsize(path)
    with open(path, "rb", buffering=0) as f:
        while f.read(1 << 20):
            pass  # warm the page cache, as the guests' runs do
        f.seek(0)
        start = time.monotonic()
        done = 0
        while done < size:
            chunk = f.read(req_kib * 1024)
            if not chunk:
                break
            done += len(chunk)
        return done / (time.monotonic() - start) / 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mib", type=int, default=256, help="sequential read volume per run")
    ap.add_argument("--req", type=int, default=128, help="sequential request size in KiB")
    ap.add_argument("--ops", type=int, default=20000, help="4 KiB random reads")
    ap.add_argument("--transport", default="pci", choices=["pci", "mmio"])
    ap.add_argument("--no-qemu", action="store_true")
    ap.add_argument("--format", default="raw", choices=["raw", "qcow2"],
                    help="qcow2: also run on a qcow2 copy of the file and print qcow2/raw and Kiln/QEMU ratios")
    a = ap.parse_args()
    disk = "/tmp/kiln-bench-io.img"
    if not os.path.exists(disk) or os.path.getsize(disk) != a.mib << 20:
        with open(disk, "wb") as f:
            f.write(os.urandom(a.mib << 20))
    rows = [("host read of the file", (host_read_mbs(disk, a.req), 0))]
    kiln = kiln_run(a, disk, "raw")
    rows.append(("Kiln seq", kiln["seq-read"]))
    rows.append(("Kiln rand 4K", kiln["rand-read-4k"]))
    if not a.no_qemu:
        qemu = qemu_run(a, disk, "raw")
        rows.append(("QEMU seq", qemu["seq-read"]))
        rows.append(("QEMU rand 4K", qemu["rand-read-4k"]))
    print(f"bench/io: {a.mib} MiB raw file, {a.req} KiB sequential reads, {a.ops} random 4 KiB reads, virtio-{a.transport}")
    print(f"{'':<24}{'MB/s':>10}{'IOPS':>10}")
    for name, (mbs, iops) in rows:
        print(f"{name:<24}{mbs:>10.1f}{iops if iops else '-':>10}")
    host = rows[0][1][0]
    print(f"Kiln seq / host read:   {kiln['seq-read'][0] / host:.3f} (target >= 0.8)")
    if not a.no_qemu:
        print(f"Kiln seq / QEMU seq:    {kiln['seq-read'][0] / qemu['seq-read'][0]:.3f} (target >= 1.0)")
        print(f"Kiln IOPS / QEMU IOPS:  {kiln['rand-read-4k'][1] / qemu['rand-read-4k'][1]:.3f} (target >= 1.0)")
    if a.format == "qcow2":
        qcow2_report(a, disk, kiln, None if a.no_qemu else qemu)


if __name__ == "__main__":
    main()
