/*
 * TSC frequency, for timeouts. Prefer what CPUID reports; otherwise measure
 * against PIT channel 2 (QEMU's default CPU model and AMD hosts report
 * nothing). Only needs to be roughly right.
 */
#include "kiln_guest.h"

#define PIT_HZ          1193182u
#define FALLBACK_HZ     2000000000ull

static uint64_t cpuid_tsc_hz(void)
{
    uint32_t r[4];
    cpuid(0, 0, r);
    uint32_t max = r[0];
    if (max >= 0x15) {
        cpuid(0x15, 0, r);                  /* TSC/crystal ratio EBX/EAX, crystal Hz ECX */
        if (r[0] && r[1] && r[2])
            return (uint64_t)r[2] * r[1] / r[0];
    }
    if (max >= 0x16) {
        cpuid(0x16, 0, r);                  /* base frequency in MHz */
        if (r[0])
            return (uint64_t)r[0] * 1000000;
    }
    return 0;
}

/* Count TSC ticks during a 10 ms PIT one-shot (mode 0) on channel 2. */
static uint64_t pit_tsc_hz(void)
{
    const uint16_t count = PIT_HZ / 100;
    uint8_t gate = inb(0x61);
    outb((gate & ~0x02) | 0x01, 0x61);      /* speaker off, gate on */
    outb(0xb0, 0x43);                       /* channel 2, lo/hi byte, mode 0, binary */
    outb(count & 0xff, 0x42);
    outb(count >> 8, 0x42);
    uint64_t t0 = rdtsc();
    for (uint32_t spins = 0; !(inb(0x61) & 0x20); spins++)  /* OUT2 goes high at terminal count */
        if (spins > 10000000)
            return 0;
    uint64_t hz = (rdtsc() - t0) * 100;
    outb(gate, 0x61);
    return hz >= 100000000 ? hz : 0;        /* < 100 MHz: no working PIT */
}

uint64_t tsc_hz(void)
{
    static uint64_t hz;
    if (!hz)
        hz = cpuid_tsc_hz();
    if (!hz)
        hz = pit_tsc_hz();
    if (!hz)
        hz = FALLBACK_HZ;
    return hz;
}

void delay_us(uint64_t us)
{
    uint64_t end = rdtsc() + tsc_hz() / 1000000 * us;
    while ((int64_t)(rdtsc() - end) < 0)
        cpu_relax();
}
