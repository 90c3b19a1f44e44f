#!/usr/bin/env python3
"""bench/pio: port-I/O exit rate of a ring-3 guest loop writing COM1's data port, under Kiln, under QEMU+KVM
and under a minimal C loop around KVM_RUN (the limit), in one run; plus time from process start to the guest's
first serial byte and each VMM's peak RSS. Prints ratios; absolute numbers drift on these noisy machines.

Per-exit cost is measured as a difference of two runs (N exits and a small count), so process start-up, QEMU's
BIOS and the guest's own set-up cancel out."""
import argparse
import os
import select
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GUEST = os.path.join(ROOT, "guest", "build", "testguest.elf")
KILN = os.path.join(ROOT, ".kiln-build", "kiln")
LIMIT_SRC = os.path.join(os.path.dirname(__file__), "kvm_limit.c")
LIMIT_BIN = "/tmp/kiln-bench-kvm-limit"


def run_vmm(argv):
    """Runs a VMM to completion, draining its stdout. Returns (wall seconds, seconds to first stdout byte,
    peak RSS in KiB, exit status)."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    first = None
    fd = proc.stdout.fileno()
    while True:
        ready, _, _ = select.select([fd], [], [], 120)
        if not ready:
            proc.kill()
            raise RuntimeError(f"timed out: {' '.join(argv)}")
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        if first is None:
            first = time.monotonic() - start
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, first, usage.ru_maxrss, proc.returncode


def kiln_argv(cmdline, kiln=None):
    return [kiln or KILN, "run", "--kernel", GUEST, "--memory", "64M", "--cmdline", cmdline]


def compare_builds(new, old, count, small, repeats):
    """Two Kiln builds side by side in the same run, interleaved so that load drifts hit both alike: the median
    start-to-first-byte of `repeats` zero-work boots and the per-exit cost, each as new/old."""
    firsts = {new: [], old: []}
    exits = {new: [], old: []}
    for _ in range(repeats):
        for kiln in (new, old):
            firsts[kiln].append(run_vmm(kiln_argv("test=exit code=0", kiln))[1])
            exits[kiln].append(per_exit(lambda c, k=kiln: kiln_argv(c, k), count, small)[0])
    med = lambda xs: sorted(xs)[len(xs) // 2]
    print(f"bench/pio: this build vs {old}, {repeats} interleaved runs each (medians)")
    print(f"{'build':<10}{'first byte ms':>15}{'us/exit':>10}")
    for name, kiln in (("new", new), ("old", old)):
        print(f"{name:<10}{med(firsts[kiln]) * 1000:>15.1f}{med(exits[kiln]):>10.2f}")
    print(f"first byte new/old: {med(firsts[new]) / med(firsts[old]):.3f} (target <= 1.05)")
    print(f"exit cost new/old:  {med(exits[new]) / med(exits[old]):.3f} (target <= 1.05)")


def qemu_argv(cmdline):
    return ["qemu-system-x86_64", "-enable-kvm", "-M", "pc", "-m", "64", "-kernel", GUEST, "-append", cmdline,
            "-device", "isa-debug-exit,iobase=0xf4,iosize=4", "-display", "none", "-serial", "stdio",
            "-nodefaults", "-no-reboot"]


def per_exit(argv_for, count, small):
    big = run_vmm(argv_for(f"test=pio count={count}"))
    little = run_vmm(argv_for(f"test=pio count={small}"))
    return (big[0] - little[0]) / (count - small) * 1e6, big


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--count", type=int, default=200000, help="port writes per measured run")
    ap.add_argument("--no-qemu", action="store_true", help="skip QEMU (e.g. where it is not installed)")
    ap.add_argument("--baseline", metavar="KILN", help="another Kiln build's kiln binary: compare this build with it "
                    "side by side (start-to-first-byte and exit cost as ratios) instead of the QEMU comparison")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved runs per build with --baseline")
    args = ap.parse_args()
    small = max(1000, args.count // 20)
    for path, what in ((GUEST, "make -C guest"), (KILN, "./kiln version")):
        if not os.path.exists(path):
            sys.exit(f"bench/pio: {path} is missing: run '{what}' first")
    if args.baseline:
        compare_builds(KILN, args.baseline, args.count, small, args.repeats)
        return
    subprocess.run(["gcc", "-O2", "-o", LIMIT_BIN, LIMIT_SRC], check=True)

    out = subprocess.run([LIMIT_BIN, str(args.count)], capture_output=True, text=True, check=True).stdout.split()
    limit_us = float(out[3]) / float(out[1]) * 1e6

    kiln_us, _ = per_exit(kiln_argv, args.count, small)
    kiln_start = run_vmm(kiln_argv("test=exit code=0"))
    rows = [("C KVM_RUN loop (limit)", limit_us, None, None), ("Kiln", kiln_us, kiln_start[1], kiln_start[2])]
    if not args.no_qemu:
        qemu_us, _ = per_exit(qemu_argv, args.count, small)
        qemu_start = run_vmm(qemu_argv("test=exit code=0"))
        rows.append(("QEMU+KVM", qemu_us, qemu_start[1], qemu_start[2]))

    print(f"bench/pio: {args.count} port writes to 0x3f8 from a ring-3 guest loop")
    print(f"{'VMM':<24}{'us/exit':>10}{'exits/s':>12}{'first byte ms':>15}{'peak RSS MiB':>14}")
    for name, us, first, rss in rows:
        fb = f"{first * 1000:.1f}" if first is not None else "-"
        mb = f"{rss / 1024:.1f}" if rss is not None else "-"
        print(f"{name:<24}{us:>10.2f}{1e6 / us:>12.0f}{fb:>15}{mb:>14}")
    print(f"Kiln exit cost / limit: {kiln_us / limit_us:.3f} (target <= 1.05)")
    if not args.no_qemu:
        print(f"Kiln exit rate / QEMU:  {qemu_us / kiln_us:.3f} (> 1 means Kiln is faster)")
        print(f"Kiln first byte / QEMU: {kiln_start[1] / qemu_start[1]:.3f} (< 1 means Kiln is faster)")
        print(f"Kiln peak RSS / QEMU:   {kiln_start[2] / qemu_start[2]:.3f} (target < 1)")


if __name__ == "__main__":
    main()
