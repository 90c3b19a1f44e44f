#!/usr/bin/env python3
"""bench/boot: time from process start to the guest kit's init marker (KILN-INIT-READY) and the VMM's peak RSS,
for Kiln, QEMU+KVM and QEMU TCG (software emulation, `-accel tcg`), on the same kernel (the kit's ELF vmlinux, PVH
entry for QEMU), initramfs (uncompressed cpio), memory and command line (the kit's recommended one plus
`kiln.ready=poweroff`, so each guest powers off right after the marker). Prints ratios against Kiln.

On hosts whose KVM is PVM (guest ring 0 emulated by KVM's instruction emulator) QEMU+KVM stops at the first
instruction that emulator cannot run; the table then shows how far it got (the last console line and QEMU's error)
and after how long. Machines here are noisy: the load average is printed with the numbers."""
import argparse
import os
import re
import select
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
KILN = os.path.join(ROOT, ".kiln-build", "kiln")
KIT = "/var/cache/kiln/guest-kit/latest"
MARKER = b"KILN-INIT-READY"
RUN_INIT = b"Run /init"


def recommended_cmdline():
    """The kit's recommended command line, read from the source so the benchmark follows it."""
    src = open(os.path.join(ROOT, "src", "Kiln.GuestKit", "KitFiles.cs")).read()
    m = re.search(r'RecommendedCmdline =\s*"([^"]+)"', src)
    if not m:
        sys.exit("bench/boot: cannot find RecommendedCmdline in src/Kiln.GuestKit/KitFiles.cs")
    return m.group(1)


def run_vmm(argv, timeout):
    """Runs a VMM until it exits (or the timeout), timing milestones on its console. Returns a dict."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    out, err = bytearray(), bytearray()
    marks = {}
    streams = {proc.stdout.fileno(): out, proc.stderr.fileno(): err}
    timed_out = False
    while streams:
        left = timeout - (time.monotonic() - start)
        if left <= 0:
            timed_out = True
            proc.kill()
            break
        ready, _, _ = select.select(list(streams), [], [], min(left, 5))
        for fd in ready:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                del streams[fd]
                continue
            streams[fd].extend(chunk)
            now = time.monotonic() - start
            if fd == proc.stdout.fileno():
                marks.setdefault("first byte", now)
                for key, needle in (("Run /init", RUN_INIT), ("marker", MARKER)):
                    if key not in marks and needle in out:
                        marks[key] = now
    _, status, usage = os.wait4(proc.pid, 0)
    text = out.decode(errors="replace")
    lines = [l for l in text.splitlines() if l.strip()]
    return {
        "wall": time.monotonic() - start,
        "marks": marks,
        "rss_mib": usage.ru_maxrss / 1024,
        "status": os.waitstatus_to_exitcode(status),
        "timed_out": timed_out,
        "last_line": lines[-1] if lines else "",
        "error": next((l for l in err.decode(errors="replace").splitlines() if l.strip()), ""),
        "marker_line": next((l for l in lines if "KILN-INIT-READY" in l), ""),
    }


def qemu_argv(accel, kernel, initrd, memory, cpus, cmdline):
    # `-cpu host` makes QEMU+KVM stop before the guest runs on PVM hosts ("failed to set MSR 0x10a"), so KVM runs
    # QEMU's default CPU model; TCG runs `max`.
    cpu = [] if accel == "kvm" else ["-cpu", "max"]
    return ["qemu-system-x86_64", "-accel", accel, "-M", "pc", *cpu,
            "-m", str(memory), "-smp", str(cpus), "-kernel", kernel, "-initrd", initrd, "-append", cmdline,
            "-display", "none", "-serial", "stdio", "-nodefaults", "-no-reboot"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kit", default=KIT, help=f"guest kit directory (default {KIT}; `kiln guest-kit build`)")
    ap.add_argument("--memory", type=int, default=256, help="guest RAM in MiB (default 256)")
    ap.add_argument("--cpus", type=int, default=1)
    ap.add_argument("--timeout", type=int, default=600, help="seconds per run (default 600)")
    ap.add_argument("--only", choices=["kiln", "qemu-kvm", "qemu-tcg"], action="append",
                    help="run only these (repeatable)")
    args = ap.parse_args()
    kernel, initrd = os.path.join(args.kit, "vmlinux"), os.path.join(args.kit, "initramfs.cpio")
    for path, what in ((kernel, "kiln guest-kit build"), (initrd, "kiln guest-kit build"), (KILN, "./kiln version")):
        if not os.path.exists(path):
            sys.exit(f"bench/boot: {path} is missing: run '{what}' first")
    cmdline = recommended_cmdline() + " kiln.ready=poweroff"
    vmms = [
        ("kiln", "Kiln", [KILN, "run", "--kernel", kernel, "--initrd", initrd, "--memory", f"{args.memory}M",
                          "--cpus", str(args.cpus), "--cmdline", cmdline]),
        ("qemu-kvm", "QEMU+KVM", qemu_argv("kvm", kernel, initrd, args.memory, args.cpus, cmdline)),
        ("qemu-tcg", "QEMU TCG", qemu_argv("tcg", kernel, initrd, args.memory, args.cpus, cmdline)),
    ]
    load_before = os.getloadavg()
    results = []
    for key, name, argv in vmms:
        if args.only and key not in args.only:
            continue
        print(f"bench/boot: {name} ...", file=sys.stderr, flush=True)
        results.append((name, run_vmm(argv, args.timeout)))
    load_after = os.getloadavg()

    print(f"kernel {kernel} ({os.path.getsize(kernel) >> 20} MiB), initramfs {os.path.getsize(initrd) >> 10} KiB, "
          f"{args.memory} MiB, {args.cpus} vCPU")
    print(f"cmdline: {cmdline}")
    print(f"load average (1/5/15 min) before {load_before[0]:.1f}/{load_before[1]:.1f}/{load_before[2]:.1f}, "
          f"after {load_after[0]:.1f}/{load_after[1]:.1f}/{load_after[2]:.1f}")
    print()
    print(f"{'VMM':<10} {'first byte s':>12} {'Run /init s':>11} {'marker s':>9} {'exit s':>7} {'status':>6} {'peak RSS MiB':>12}")
    for name, r in results:
        m = r["marks"]
        f = lambda k: f"{m[k]:.1f}" if k in m else "-"
        print(f"{name:<10} {f('first byte'):>12} {f('Run /init'):>11} {f('marker'):>9} {r['wall']:>7.1f} "
              f"{('timeout' if r['timed_out'] else r['status']):>6} {r['rss_mib']:>12.1f}")
    kiln = next((r for n, r in results if n == "Kiln"), None)
    print()
    for name, r in results:
        if "marker" not in r["marks"]:
            print(f"{name}: no init marker; stopped after {r['wall']:.1f} s; last console line: {r['last_line']!r}; "
                  f"first error line: {r['error']!r}")
        else:
            print(f"{name}: {r['marker_line']}")
    if kiln and "marker" in kiln["marks"]:
        for name, r in results:
            if name != "Kiln" and "marker" in r["marks"]:
                print(f"Kiln / {name}: time to marker {kiln['marks']['marker'] / r['marks']['marker']:.2f}x, "
                      f"peak RSS {kiln['rss_mib'] / r['rss_mib']:.2f}x")


if __name__ == "__main__":
    main()
