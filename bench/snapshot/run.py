#!/usr/bin/env python3
"""bench/snapshot: save time and restore-to-running time of the counter test guest (test=counter, with FILL MiB
of its RAM written with a pattern), under Kiln and under QEMU+KVM, on the same guest image, in one run.

Kiln:  save = the VMM's control verb `snapshot` (guest paused while the file is written: pausedMs);
       restore = `kiln run --restore FILE --stats` (open+check, machine built, RAM mapped lazily, vCPUs resumed),
       and, in-process without .NET start-up/JIT, SnapBench (warm restores; a breakdown per step).
QEMU:  save = QMP stop + migrate "exec:cat > FILE" until completed (max-bandwidth raised so it is not throttled);
       restore = qemu -incoming "exec:cat FILE" until the migration completed, then QMP cont.
Both:  time from process spawn to the guest's first tick after the restore (end to end, includes VMM start-up).

Numbers drift with machine load: the load average is printed with them."""
import argparse
import json
import os
import re
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GUEST = os.path.join(ROOT, "guest", "build", "testguest.elf")
KILN = ["dotnet", os.path.join(ROOT, "src", "Kiln.Cli", "bin", "Release", "net10.0", "kiln.dll")]
SNAPBENCH = ["dotnet", os.path.join(ROOT, "bench", "snapshot", "SnapBench", "bin", "Release", "net10.0", "SnapBench.dll")]


class Console:
    """A child's stdout read without blocking; text accumulates."""

    def __init__(self, proc):
        self.proc, self.text = proc, ""
        os.set_blocking(proc.stdout.fileno(), False)

    def pump(self, timeout=0.01):
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if ready:
            chunk = self.proc.stdout.read()
            if chunk:
                self.text += chunk.decode(errors="replace")

    def drain(self):
        """After the child exited: everything it still had in the pipe."""
        os.set_blocking(self.proc.stdout.fileno(), True)
        self.text += self.proc.stdout.read().decode(errors="replace")

    def wait_for(self, pattern, timeout=300):
        end = time.monotonic() + timeout
        while not re.search(pattern, self.text):
            if time.monotonic() > end or self.proc.poll() is not None:
                self.pump()
                if re.search(pattern, self.text):
                    return
                raise RuntimeError(f"no {pattern!r}: {self.text[-400:]}")
            self.pump()


def control(sock_path, request):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock_path)
    s.sendall((json.dumps(request) + "\n").encode())
    line = s.makefile().readline()
    s.close()
    return json.loads(line)


class Qmp:
    def __init__(self, path, timeout=30):
        end = time.monotonic() + timeout
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(path)
                break
            except OSError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.002)
        self.f = self.s.makefile("rw")
        self.f.readline()
        self.cmd("qmp_capabilities")

    def cmd(self, name, **args):
        self.f.write(json.dumps({"execute": name, "arguments": args} if args else {"execute": name}) + "\n")
        self.f.flush()
        while True:
            reply = json.loads(self.f.readline())
            if "return" in reply or "error" in reply:
                if "error" in reply:
                    raise RuntimeError(f"QMP {name}: {reply['error']}")
                return reply["return"]


def cmdline(fill):
    return f"test=counter delay_us=1000 fill_mib={fill}"


def kiln_round(mem, fill, d):
    sock, snap = os.path.join(d, "k.sock"), os.path.join(d, "k.ksnap")
    proc = subprocess.Popen(KILN + ["run", "--kernel", GUEST, "--memory", f"{mem}M", "--cmdline", cmdline(fill),
                                    "--control-socket", sock], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    con = Console(proc)
    con.wait_for(r"tick 20\n")
    r = control(sock, {"cmd": "save", "file": snap})
    proc.wait()
    con.drain()
    save_ms = r["pausedMs"]
    last = int(re.findall(r"tick (\d+)\n", con.text)[-1])
    t0 = time.monotonic()
    proc = subprocess.Popen(KILN + ["run", "--restore", snap, "--stats"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    con = Console(proc)
    con.wait_for(r"tick \d+\n")
    first_tick = (time.monotonic() - t0) * 1000
    first = int(re.search(r"tick (\d+)", con.text).group(1))
    proc.kill()
    proc.wait()
    err = proc.stderr.read()
    m = re.search(r"([\d.]+) ms from open to resume", err.decode())
    assert first in (last + 1, last + 2), f"kiln: resumed at tick {first}, saved after {last}"
    return save_ms, float(m.group(1)) if m else None, first_tick, os.stat(snap).st_blocks * 512


def qemu_base(mem, fill, qmp):
    return ["qemu-system-x86_64", "-enable-kvm", "-M", "pc", "-m", str(mem), "-kernel", GUEST, "-append", cmdline(fill),
            "-device", "isa-debug-exit,iobase=0xf4,iosize=4", "-display", "none", "-serial", "stdio", "-nodefaults",
            "-no-reboot", "-qmp", f"unix:{qmp},server=on,wait=off"]


def qemu_round(mem, fill, d):
    qmp_path, snap = os.path.join(d, "q.qmp"), os.path.join(d, "q.mig")
    proc = subprocess.Popen(qemu_base(mem, fill, qmp_path), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    con = Console(proc)
    con.wait_for(r"tick 20\n")
    qmp = Qmp(qmp_path)
    qmp.cmd("migrate-set-parameters", **{"max-bandwidth": 1 << 40})
    t0 = time.monotonic()
    qmp.cmd("stop")
    qmp.cmd("migrate", uri=f"exec:cat > {snap}")
    while qmp.cmd("query-migrate").get("status") not in ("completed", "failed"):
        time.sleep(0.001)
    save_ms = (time.monotonic() - t0) * 1000
    qmp.cmd("quit")
    proc.wait()
    con.drain()
    last = int(re.findall(r"tick (\d+)\n", con.text)[-1])
    t0 = time.monotonic()
    proc = subprocess.Popen(qemu_base(mem, fill, qmp_path) + ["-incoming", f"exec:cat {snap}"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    con = Console(proc)
    qmp = Qmp(qmp_path)
    while qmp.cmd("query-migrate").get("status") != "completed":
        time.sleep(0.001)
    qmp.cmd("cont")
    running_ms = (time.monotonic() - t0) * 1000
    con.wait_for(r"tick \d+\n")
    first_tick = (time.monotonic() - t0) * 1000
    first = int(re.search(r"tick (\d+)", con.text).group(1))
    proc.kill()
    proc.wait()
    assert first in (last + 1, last + 2), f"qemu: resumed at tick {first}, saved after {last}"
    return save_ms, running_ms, first_tick, os.stat(snap).st_blocks * 512


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="512:256,1024:512", help="MEM_MIB:FILL_MIB,... (default 512:256,1024:512)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-qemu", action="store_true")
    a = ap.parse_args()
    subprocess.run(["make", "-s", "-C", os.path.join(ROOT, "guest")], check=True)
    print(f"load average at start: {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="kiln-snapbench-") as d:
        for size in a.sizes.split(","):
            mem, fill = (int(x) for x in size.split(":"))
            k = [kiln_round(mem, fill, d) for _ in range(a.rounds)]
            warm = json.loads(subprocess.run(SNAPBENCH + [GUEST, str(mem), str(fill), os.path.join(d, "w.ksnap"),
                                                          str(a.rounds + 2)], capture_output=True, check=True).stdout)
            print(f"\n{mem} MiB guest, {fill} MiB written by the guest, load {os.getloadavg()[0]:.1f}")
            print(f"  kiln  save (guest paused)      {med([x[0] for x in k]):8.1f} ms   file on disk {k[0][3] >> 20} MiB (sparse)")
            print(f"  kiln  restore open->resume     {med([x[1] for x in k]):8.1f} ms   (cold process, .NET JIT included)")
            print(f"  kiln  restore open->resume     {med(warm['restoreToRunningMs'][1:]):8.1f} ms   (warm, in-process; steps: {warm['steps'][-1]})")
            print(f"  kiln  spawn->first tick        {med([x[2] for x in k]):8.1f} ms")
            if not a.no_qemu:
                q = [qemu_round(mem, fill, d) for _ in range(a.rounds)]
                print(f"  qemu  save (stop+migrate exec) {med([x[0] for x in q]):8.1f} ms   file on disk {q[0][3] >> 20} MiB")
                print(f"  qemu  restore spawn->cont      {med([x[1] for x in q]):8.1f} ms")
                print(f"  qemu  spawn->first tick        {med([x[2] for x in q]):8.1f} ms")
                print(f"  ratio save kiln/qemu {med([x[0] for x in k]) / med([x[0] for x in q]):.2f}, "
                      f"spawn->first tick kiln/qemu {med([x[2] for x in k]) / med([x[2] for x in q]):.2f}")
            print(f"  raw: kiln {k} warm {warm['restoreToRunningMs']}" + ("" if a.no_qemu else f" qemu {q}"))
    print(f"\nload average at end: {os.getloadavg()}")


if __name__ == "__main__":
    sys.exit(main())
