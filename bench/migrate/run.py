#!/usr/bin/env python3
"""bench/migrate: live-migration total time and downtime of the multiboot test guest with 1 GiB of RAM, idle
(test=echo: polls the UART, dirties nothing) and under load (test=dirty: rewrites 64 MiB without pause), Kiln
VMM to Kiln VMM and QEMU+KVM to QEMU+KVM (-incoming tcp:), both on loopback, in one run. Both sides use a 300 ms
downtime budget; QEMU's 128 MiB/s default bandwidth cap is lifted (--qemu-bandwidth) so both may use the link.

Two downtimes per run. "seen": what the guest's console shows, the same way for both VMMs: the guest prints a tick
every 2 ms, and the gap between the last byte the source VMM wrote and the first byte the destination VMM wrote
(read on the host with timestamps) is the time no guest code ran. "own": as each VMM reports it: Kiln from pausing
the source to the destination's "running" answer; QEMU's query-migrate "downtime", which ends when the source has
sent the last bytes (it leaves out the destination's device load and start). Prints medians and ratios; absolute
numbers drift on these noisy machines, so the load average is printed with them."""
import argparse
import json
import os
import re
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GUEST = os.path.join(ROOT, "guest", "build", "testguest.elf")
TOKEN = "bench-migrate-token"
DEBUG = False  # --debug: kiln runs with --debug and its migration lines are printed
WORKLOADS = {"idle": "test=dirty mb=0 tick_ms=2", "dirty": "test=dirty mb=64 tick_ms=2"}


class Output:
    """Collects a VMM's stdout on a thread, with the host time of every read."""

    def __init__(self, proc):
        self.chunks = []
        self.thread = threading.Thread(target=self._read, args=(proc.stdout.fileno(),), daemon=True)
        self.thread.start()

    def _read(self, fd):
        while True:
            try:
                data = os.read(fd, 1 << 16)
            except OSError:
                return
            if not data:
                return
            self.chunks.append((time.monotonic(), data))

    def text(self):
        return b"".join(c for _, c in list(self.chunks)).decode(errors="replace")

    def first(self):
        return self.chunks[0][0] if self.chunks else None

    def last(self):
        return self.chunks[-1][0] if self.chunks else None


def seen_gap(src, dst):
    if src.last() is None or dst.first() is None:
        return float("nan")
    return (dst.first() - src.last()) * 1000


def wait_for(predicate, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""




def kiln_migrate(kiln, argv, tmp, src_disk=None, dst_disk=None, copy_storage=False, timeout=300):
    """One Kiln migration, VMM to VMM on loopback: a destination with --incoming, a source with a control socket,
    `migrate` once the source's guest ticks. Returns the `migrated` event and the (source, destination) outputs."""
    sock = os.path.join(tmp, "src.sock")
    dst_err = os.path.join(tmp, "dst.err")
    env = dict(os.environ, KILN_MIGRATION_TOKEN=TOKEN)
    base = kiln + ["run"] + argv
    disk = lambda path: ["--disk", path] if path else []  # noqa: E731
    dst = subprocess.Popen(base + disk(dst_disk) + ["--incoming", "tcp:127.0.0.1:0"], env=env,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=open(dst_err, "w"))
    src_err = os.path.join(tmp, "src.err")
    src = subprocess.Popen(base + disk(src_disk) + ["--control-socket", sock], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=open(src_err, "w"))
    src_o, dst_o = Output(src), Output(dst)
    try:
        wait_for(lambda: re.search(r"migration on tcp:127.0.0.1:(\d+)", read(dst_err)), 120, "the Kiln destination")
        port = re.search(r"migration on tcp:127.0.0.1:(\d+)", read(dst_err)).group(1)
        wait_for(lambda: "tick 3\n" in src_o.text() and os.path.exists(sock), 120, "the Kiln source guest")
        time.sleep(1)
        watch = socket.socket(socket.AF_UNIX)
        watch.connect(sock)
        wf = watch.makefile("rw")
        wf.write('{"cmd":"watch"}\n')
        wf.flush()
        wf.readline()
        ctl = socket.socket(socket.AF_UNIX)
        ctl.connect(sock)
        cf = ctl.makefile("rw")
        request = {"cmd": "migrate", "uri": f"tcp:127.0.0.1:{port}", "token": TOKEN, "maxDowntimeMs": 300}
        if copy_storage:
            request["copyStorage"] = True
        cf.write(json.dumps(request) + "\n")
        cf.flush()
        if not json.loads(cf.readline()).get("ok"):
            raise RuntimeError("migrate refused")
        watch.settimeout(timeout)
        for line in wf:
            e = json.loads(line)
            if e["event"] == "migrated":
                wait_for(lambda: dst_o.first() is not None, 10, "the destination's first output")
                src.wait(10)
                if DEBUG:
                    for name, path in (("source", src_err), ("destination", dst_err)):
                        for line in read(path).splitlines():
                            if "migration" in line or "switch-over" in line:
                                print(f"  [{name}] {line}", file=sys.stderr)
                return e, src_o, dst_o
            if e["event"] == "migration-failed":
                raise RuntimeError("Kiln migration failed: " + e.get("message", ""))
        raise RuntimeError("the Kiln source closed its control socket")
    finally:
        for p in (src, dst):
            p.kill()
            p.wait()


def kiln_once(kiln, memory, workload, tmp):
    e, src_o, dst_o = kiln_migrate(kiln, ["--kernel", GUEST, "--memory", memory, "--cmdline", WORKLOADS[workload]], tmp)
    return e["totalMs"], e["downtimeMs"], e.get("round", 0), seen_gap(src_o, dst_o)


class Qmp:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(path)
        self.f = self.s.makefile("rw")
        json.loads(self.f.readline())
        self.cmd("qmp_capabilities")

    def cmd(self, name, **args):
        self.f.write(json.dumps({"execute": name, "arguments": args}) + "\n")
        self.f.flush()
        while True:
            r = json.loads(self.f.readline())
            if "event" in r:
                continue
            if "error" in r:
                raise RuntimeError(f"QMP {name}: {r['error']}")
            return r["return"]


def qemu_migrate(tmp, mib, cmdline, bandwidth, role_args=lambda role: [], migrate_args=None, timeout=120,
                 first_output=lambda out: out.first()):
    """One QEMU migration, QEMU to QEMU on loopback (-incoming tcp:), QMP `migrate` once the source's guest ticks.
    role_args(role) adds per-side arguments ("src"/"dst"); first_output(out) finds when the destination's guest
    first printed. Returns (query-migrate info, the seen gap in ms, the most disk bytes reported) or None when it
    did not complete within the timeout."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs, outs = [], {}
    for role in ("dst", "src"):
        qmp = os.path.join(tmp, f"q{role}.qmp")
        argv = ["qemu-system-x86_64", "-enable-kvm", "-M", "pc", "-m", mib, "-kernel", GUEST, "-append", cmdline,
                "-device", "isa-debug-exit,iobase=0xf4,iosize=4", "-display", "none", "-nodefaults",
                "-serial", "stdio", "-qmp", f"unix:{qmp},server=on,wait=off"] + role_args(role)
        if role == "dst":
            argv += ["-incoming", f"tcp:127.0.0.1:{port}"]
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        procs.append(p)
        outs[role] = Output(p)
    try:
        wait_for(lambda: "tick 3\n" in outs["src"].text(), 120, "the QEMU source guest")
        time.sleep(1)
        qmp = Qmp(os.path.join(tmp, "qsrc.qmp"))
        qmp.cmd("migrate-set-parameters", **{"downtime-limit": 300, "max-bandwidth": bandwidth})
        qmp.cmd("migrate", uri=f"tcp:127.0.0.1:{port}", **(migrate_args or {}))
        deadline = time.monotonic() + timeout
        disk_sent = 0
        while time.monotonic() < deadline:
            info = qmp.cmd("query-migrate")
            disk_sent = max(disk_sent, info.get("disk", {}).get("transferred", 0))  # reported while it runs
            if info.get("status") == "completed":
                wait_for(lambda: first_output(outs["dst"]) is not None, 10, "the destination's first output")
                time.sleep(0.2)  # the source's last bytes are already out; nothing follows a completed migration
                return info, (first_output(outs["dst"]) - outs["src"].last()) * 1000, disk_sent
            if info.get("status") in ("failed", "cancelled"):
                raise RuntimeError(f"QEMU migration {info.get('status')}: {info.get('error-desc', '')}")
            time.sleep(0.05)
        qmp.cmd("migrate_cancel")
        return None
    finally:
        for p in procs:
            p.kill()
            p.wait()


def qemu_once(memory, workload, tmp, bandwidth):
    mib = str(int(memory.rstrip("G")) * 1024) if memory.endswith("G") else memory.rstrip("M")
    r = qemu_migrate(tmp, mib, WORKLOADS[workload], bandwidth)
    if r is None:
        return None
    info, seen, _ = r
    return info["total-time"], info["downtime"], info.get("ram", {}).get("dirty-sync-count", 0), seen


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kiln", default=os.path.join(ROOT, ".kiln-build", "kiln"), help="command that runs kiln")
    ap.add_argument("--memory", default="1G")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--qemu-bandwidth", type=int, default=100 << 30, help="QEMU max-bandwidth in bytes/s")
    ap.add_argument("--workloads", default="idle,dirty")
    ap.add_argument("--vmms", default="kiln,qemu")
    ap.add_argument("--debug", action="store_true", help="run kiln with --debug and print its migration timings")
    a = ap.parse_args()
    global DEBUG
    DEBUG = a.debug
    subprocess.run(["make", "-s", "-C", os.path.join(ROOT, "guest")], check=True)
    # The ./kiln launcher rebuilds .kiln-build when the sources changed; calling the build directly would not.
    subprocess.run([os.path.join(ROOT, "kiln"), "--help"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kiln = shlex.split(a.kiln) + (["--debug"] if a.debug else [])
    print(f"load average before: {os.getloadavg()[0]:.1f}; guest RAM {a.memory}; {a.runs} runs each; medians")
    print(f"{'workload':8} {'vmm':5} {'total ms':>9} {'seen ms':>8} {'own ms':>7} {'rounds':>7}   runs (total/seen/own)")
    for workload in a.workloads.split(","):
        results = {}
        for vmm in a.vmms.split(","):
            runs = []
            for _ in range(a.runs):
                with tempfile.TemporaryDirectory(prefix="kmigbench-") as tmp:
                    r = kiln_once(kiln, a.memory, workload, tmp) if vmm == "kiln" else qemu_once(a.memory, workload, tmp, a.qemu_bandwidth)
                runs.append(r)
            done = [r for r in runs if r is not None]
            if not done:
                print(f"{workload:8} {vmm:5} did not converge within 120 s")
                continue
            total = statistics.median(r[0] for r in done)
            own = statistics.median(r[1] for r in done)
            rounds = statistics.median(r[2] for r in done)
            seen = statistics.median(r[3] for r in done)
            results[vmm] = (total, seen)
            detail = " ".join(f"{r[0]:.0f}/{r[3]:.1f}/{r[1]:.1f}" if r else "none" for r in runs)
            print(f"{workload:8} {vmm:5} {total:9.0f} {seen:8.1f} {own:7.1f} {rounds:7.0f}   {detail}")
            sys.stdout.flush()
        if "kiln" in results and "qemu" in results:
            k, q = results["kiln"], results["qemu"]
            print(f"{workload:8} kiln/qemu: total {k[0] / q[0]:.2f}x, seen downtime {k[1] / max(q[1], 0.001):.2f}x")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
