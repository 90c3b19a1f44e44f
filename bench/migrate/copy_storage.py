#!/usr/bin/env python3
"""bench/migrate/copy_storage.py: live migration with the disk copied (Kiln `migrate` with copyStorage, QEMU 7.2
`migrate` with blk=true, its block migration), VMM to VMM on loopback, one run after the other, same guest and disk.

The disk: a 1 GiB raw image holding --data-mib MiB of random data (the rest holes); the destination's image is
absent for Kiln (its VMM creates it) and a fresh sparse file of the same size for QEMU (block migration needs one).
Workloads: **idle** = `test=dirty mb=0 tick_ms=2` (only ticks; the disk is not touched), **writer** =
`test=disk-writer tick_ms=2` (random 4 KiB writes over 16 MiB of the disk, each read back and checked). Columns as
in run.py: total, seen (console gap), own (each VMM's downtime figure), plus the bytes each VMM reports sent.
Both use a 300 ms downtime budget; QEMU's bandwidth cap is lifted. Prints the load average with the numbers."""
import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from run import GUEST, ROOT, kiln_migrate, qemu_migrate, seen_gap  # noqa: E402

# QEMU's destination writes its block-migration progress on stdout; see first_guest_output.

WORKLOADS = {"idle": "test=dirty mb=0 tick_ms=2", "writer": "test=disk-writer tick_ms=2"}
DISK = 1 << 30


def make_disk(path, data_mib):
    with open(path, "wb") as f:
        f.truncate(DISK)
        # Data in 1 MiB pieces spread over the disk (every 4th MiB from 64 MiB on), so holes sit between them.
        for i in range(data_mib):
            f.seek((64 + i * 4) << 20)
            f.write(os.urandom(1 << 20))


def kiln_once(kiln, workload, tmp, src_disk):
    argv = ["--kernel", GUEST, "--memory", "256M", "--cmdline", WORKLOADS[workload]]
    e, src_o, dst_o = kiln_migrate(kiln, argv, tmp, src_disk=src_disk, dst_disk=os.path.join(tmp, "dst.raw"),
                                   copy_storage=True, timeout=600)
    if "MISMATCH" in dst_o.text():
        raise RuntimeError("the guest found its disk damaged on the destination")
    return e["totalMs"], e["downtimeMs"], e.get("round", 0), seen_gap(src_o, dst_o), e["bytesSent"]


def first_guest_output(out):
    """QEMU's destination prints its block-migration progress ("Receiving block device images", "Completed N %") on
    stdout before the guest runs: the guest's first output is the first chunk after "Completed 100 %"."""
    chunks = list(out.chunks)
    for i, (_, data) in enumerate(chunks):
        if b"Completed 100 %" in data:
            return chunks[i + 1][0] if i + 1 < len(chunks) else None
    return chunks[0][0] if chunks else None


def qemu_once(workload, tmp, src_disk, bandwidth):
    dst_disk = os.path.join(tmp, "qdst.raw")
    with open(dst_disk, "wb") as f:
        f.truncate(DISK)
    disks = {"src": src_disk, "dst": dst_disk}
    r = qemu_migrate(tmp, "256", WORKLOADS[workload], bandwidth,
                     role_args=lambda role: ["-drive", f"file={disks[role]},format=raw,if=none,id=d0,cache=writeback",
                                             "-device", "virtio-blk-pci,drive=d0,disable-legacy=on"],
                     migrate_args={"blk": True}, timeout=600, first_output=first_guest_output)
    if r is None:
        return None
    info, seen, disk_sent = r
    sent = info.get("ram", {}).get("transferred", 0) + disk_sent
    return info["total-time"], info["downtime"], info.get("ram", {}).get("dirty-sync-count", 0), seen, sent


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kiln", default=os.path.join(ROOT, ".kiln-build", "kiln"), help="command that runs kiln")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--data-mib", type=int, default=128, help="MiB of data on the 1 GiB disk")
    ap.add_argument("--qemu-bandwidth", type=int, default=100 << 30)
    ap.add_argument("--workloads", default="idle,writer")
    ap.add_argument("--vmms", default="kiln,qemu")
    a = ap.parse_args()
    subprocess.run(["make", "-s", "-C", os.path.join(ROOT, "guest")], check=True)
    subprocess.run([os.path.join(ROOT, "kiln"), "--help"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kiln = shlex.split(a.kiln)
    print(f"load average before: {os.getloadavg()[0]:.1f}; 1 GiB raw disk with {a.data_mib} MiB of data, 256 MiB RAM; "
          f"{a.runs} runs each; medians")
    print(f"{'workload':8} {'vmm':5} {'total ms':>9} {'seen ms':>8} {'own ms':>7} {'rounds':>7} {'MB sent':>8}   runs (total/seen/own)")
    for workload in a.workloads.split(","):
        results = {}
        for vmm in a.vmms.split(","):
            runs = []
            for _ in range(a.runs):
                with tempfile.TemporaryDirectory(prefix="kcsbench-", dir="/var/tmp") as tmp:
                    src_disk = os.path.join(tmp, "src.raw")
                    make_disk(src_disk, a.data_mib)
                    r = kiln_once(kiln, workload, tmp, src_disk) if vmm == "kiln" else qemu_once(workload, tmp, src_disk, a.qemu_bandwidth)
                runs.append(r)
            done = [r for r in runs if r is not None]
            if not done:
                print(f"{workload:8} {vmm:5} did not converge")
                continue
            total = statistics.median(r[0] for r in done)
            own = statistics.median(r[1] for r in done)
            rounds = statistics.median(r[2] for r in done)
            seen = statistics.median(r[3] for r in done)
            sent = statistics.median(r[4] for r in done) / 1e6
            results[vmm] = (total, seen)
            detail = " ".join(f"{r[0]:.0f}/{r[3]:.1f}/{r[1]:.1f}" if r else "none" for r in runs)
            print(f"{workload:8} {vmm:5} {total:9.0f} {seen:8.1f} {own:7.1f} {rounds:7.0f} {sent:8.1f}   {detail}")
            sys.stdout.flush()
        if "kiln" in results and "qemu" in results:
            k, q = results["kiln"], results["qemu"]
            print(f"{workload:8} kiln/qemu: total {k[0] / q[0]:.2f}x, seen downtime {k[1] / max(q[1], 0.001):.2f}x")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
