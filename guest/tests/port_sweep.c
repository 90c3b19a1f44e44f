/*
 * test=port-sweep: a hostile guest against the VMM's port-I/O dispatch. From ring 0 (a guest kernel's privilege;
 * on PVM hosts that code is emulated, about 1.6 M instructions/s, so the loop is plain integer code) it reads every
 * port 0..0xFFFF at widths 1, 2 and 4, and writes each with a garbage value, except the writes whose job is to stop
 * or reset the machine (they would end the test, not probe the VMM):
 *
 *   0x64         i8042 command: 0xFE and 0xF0-0xFE pulse the CPU reset line
 *   0x92         system control port A: bit 0 is the fast reset
 *   0xF4-0xF7    debug-exit: any write ends the VMM (the test's own exit)
 *   pm1a_cnt+0/1 ACPI PM1a control (default 0x604): SLP_EN with the S5 type powers off
 *   0xCF9        reset control: RST_CPU resets
 *
 * A write is skipped when any byte it covers is one of these, except a dword at 0xCF8: chipsets decode that as
 * CONFIG_ADDRESS, it never reaches 0xCF9. Reads are never skipped. Afterwards COM1 is set back to 8N1 without
 * loopback (the sweep wrote its registers too) and the summary is printed; the debug-exit then reports the end.
 *
 * Options: first=P last=P narrow the range; ring3=1 runs the same loop at ring 3, where every access is checked
 * against the TSS I/O bitmap, which ends at port 0xFFFF: a wider access there is a #GP, so ring 3 stops at
 * 0xFFFC. On a PVM host ring 3 is no faster here (each in/out traps to KVM's emulator for that check: about 46 s
 * for 0x1000..0xFFFC, against 17-28 s for the whole range at ring 0), hence ring 0 by default.
 */
#include "tests.h"

#define RING0 __attribute__((target("general-regs-only"), noinline))

struct port_range {
    uint32_t first, last;
};

static struct port_range stops[5] = {
    { 0x64, 0x64 },
    { 0x92, 0x92 },
    { 0xF4, 0xF7 },
    { 0x604, 0x605 },   /* replaced by pm1a_cnt */
    { 0xCF9, 0xCF9 },
};

static struct {
    uint32_t first, last;
    uint64_t reads, all_ones, writes, skipped;
} sweep;

RING0 static bool stops_machine(uint32_t port, uint32_t width)
{
    if (port == 0xCF8 && width == 4)
        return false;
    for (unsigned i = 0; i < sizeof(stops) / sizeof(stops[0]); i++)
        if (port <= stops[i].last && port + width - 1 >= stops[i].first)
            return true;
    return false;
}

/* A fixed pseudo-random value per port and width, so every run writes the same garbage. */
RING0 static uint32_t garbage(uint32_t port, uint32_t width)
{
    uint32_t x = port * 0x9E3779B1u ^ width * 0x85EBCA77u;
    x ^= x >> 15;
    x *= 0x2C1B3C6Du;
    x ^= x >> 12;
    return x;
}

RING0 static uint64_t sweep_ports(void)
{
    for (uint32_t port = sweep.first; port <= sweep.last; port++) {
        uint16_t p = (uint16_t)port;
        for (uint32_t width = 1; width <= 4; width <<= 1) {
            uint32_t v, ones;
            if (width == 1) {
                v = inb(p);
                ones = 0xFF;
            } else if (width == 2) {
                v = inw(p);
                ones = 0xFFFF;
            } else {
                v = inl(p);
                ones = 0xFFFFFFFFu;
            }
            sweep.reads++;
            if (v == ones)
                sweep.all_ones++;
            if (stops_machine(port, width)) {
                sweep.skipped++;
                continue;
            }
            uint32_t g = garbage(port, width);
            if (width == 1)
                outb((uint8_t)g, p);
            else if (width == 2)
                outw((uint16_t)g, p);
            else
                outl(g, p);
            sweep.writes++;
        }
    }
    return 0;
}

/* COM1 back to 8N1, DLAB and loopback off, FIFOs on, no interrupts: the sweep wrote garbage to all of it. */
static void com1_reset(void)
{
    outb(0x03, 0x3FB);
    outb(0x00, 0x3F9);
    outb(0x07, 0x3FA);
    outb(0x03, 0x3FC);
}

int test_port_sweep(const char *cmdline)
{
    uint32_t pm1a_cnt = (uint32_t)arg_u64(cmdline, "pm1a_cnt", 0x604);
    stops[3] = (struct port_range){ pm1a_cnt, pm1a_cnt + 1 };
    sweep.first = (uint32_t)arg_u64(cmdline, "first", 0);
    sweep.last = (uint32_t)arg_u64(cmdline, "last", 0xFFFF);
    if (sweep.last > 0xFFFF)
        sweep.last = 0xFFFF;
    bool ring3 = arg_u64(cmdline, "ring3", 0) != 0;
    if (ring3 && sweep.last > 0xFFFC)
        sweep.last = 0xFFFC;
    printf("port sweep: ports 0x%x..0x%x, widths 1 2 4, at ring %d\n", sweep.first, sweep.last, ring3 ? 3 : 0);
    uint64_t start = rdtsc();
    if (ring3)
        sweep_ports();
    else
        kiln_service(KILN_SVC_RING0_CALL, (uint64_t)sweep_ports);
    uint64_t ms = (rdtsc() - start) / (tsc_hz() / 1000);
    com1_reset();
    printf("\nport sweep: done in %lu ms: %lu reads (%lu all-ones), %lu writes, %lu skipped\n", (unsigned long)ms,
           (unsigned long)sweep.reads, (unsigned long)sweep.all_ones, (unsigned long)sweep.writes,
           (unsigned long)sweep.skipped);
    /* The VMM still dispatches: an unclaimed port reads as all-ones. */
    bool ok = inb(0x1234) == 0xFF && inl(0x2004) == 0xFFFFFFFFu;
    puts(ok ? "port sweep: vmm alive" : "port sweep: unclaimed ports no longer read all-ones");
    return ok ? 0 : 1;
}
