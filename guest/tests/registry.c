/* Maps test=NAME to a test body. To add a test: one file in tests/, one line here. */
#include "tests.h"

static const struct {
    const char *name;
    int (*run)(const char *cmdline);
    const char *usage;
} tests[] = {
    { "exit", test_exit, "code=N msg=TEXT" },
    { "smp", test_smp, "cpus=N" },
    { "ports", test_ports, "" },
    { "triple", test_triple, "" },
    { "pio", test_pio, "count=N port=P" },
    { "fault", test_fault, "" },
    { "reboot", test_reboot, "boots=N" },
    { "echo", test_echo, "" },
    { "rtc", test_rtc, "" },
    { "poweroff", test_poweroff, "[pm1a_cnt=PORT]" },
    { "powerbutton", test_powerbutton, "[pm1a_evt=PORT] [pm1a_cnt=PORT]" },
    { "virtio-blk", test_virtio_blk,
      "[transport=pci|mmio] [nread=N] [id=1] [write=1|ro=1 sector=S count=C] [hostile=1] [flush=1] [bench=1 mib=M req=K ops=N] [hold=1]" },
    { "virtio-rng", test_virtio_rng, "[transport=pci|mmio] bytes=N" },
    { "virtio-hostile", test_virtio_hostile,
      "case=oob-addr|loop|long-chain|bad-index|zero-len|huge-len|wrong-dir|avail-jump|indirect-oob [transport=...]" },
    { "virtio-console", test_virtio_console, "[transport=pci|mmio] [wait=SECONDS]" },
    { "emulate", test_emulate, "" },
    { "counter", test_counter, "[count=N] [delay_us=D] [fill_mib=M] [blk=1] [rng=1] [transport=pci|mmio]" },
    { "virtio-net", test_virtio_net, "[transport=pci|mmio] ip=A.B.C.D peer=A.B.C.D [count=N] [mrg=1]" },
    { "dirty", test_dirty, "[mb=64] [static_mb=16] [tick_ms=100] [ticks=0]" },
    { "devdirty", test_devdirty, "[mb=32] [disk_mb=4] [tick_ms=100] [transport=pci|mmio]" },
    { "disk-writer", test_disk_writer, "[blocks=4096] [writes=0] [tick_ms=100] [seed=1] [transport=pci|mmio]" },
    { "fsbase", test_fsbase, "[cpus=2] [seconds=5] [tasks=4] [checks=100] [kthread=0|1] [userds=0|1] [setfs=0|1] [entry=ud2|syscall] [io_every=N] [timer_us=N] [idle_every=N]" },
    { "tlb", test_tlb, "[cpus=2] [seconds=5] [tasks=4] [checks=100] [remap=0|1] [cow=0|1] [shared=0|1] [kthread=0|1] [userds=0|1] [setfs=0|1] [entry=ud2|syscall] [io_every=N] [timer_us=N] [idle_every=N]" },
    { "pvflush", test_pvflush, "[pv=1|0] [seconds=5] [delay_us=0]" },
    { "ptrecycle", test_ptrecycle, "[cpus=2] [seconds=5] [pool=64] [checks=100] [entry=ud2|syscall] [io_every=N] [timer_us=N] [idle_every=N]" },
    { "ptwrite", test_ptwrite, "[seconds=2] [kinds=all|mov|movsb|sse|avx|avx512]" },
    { "xstate", test_xstate, "[cpus=1|2]" },
    { "port-sweep", test_port_sweep, "[ring3=1] [first=P] [last=P] [pm1a_cnt=PORT]" },
    { "mmio-sweep", test_mmio_sweep, "[transport=pci|mmio] [full=1]" },
};

int test_main(const char *cmdline)
{
    const char *name = arg_str(cmdline, "test");
    for (size_t i = 0; name && i < sizeof(tests) / sizeof(tests[0]); i++)
        if (strcmp(name, tests[i].name) == 0)
            return tests[i].run(cmdline);

    printf("guest: %s test in command line '%s'; available:\n", name ? "unknown" : "no", cmdline);
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
        printf("  test=%s%s%s\n", tests[i].name, *tests[i].usage ? " " : "", tests[i].usage);
    return KILN_EXIT_BAD_TEST;
}
