/*
 * The calling CPU's local APIC timer, periodic, at KILN_TIMER_VECTOR (ring 3: the LAPIC page is mapped
 * user-accessible). KVM's local APIC timer counts at 1 GHz, so with divide-by-1 the count is in nanoseconds.
 */
#include "kiln_guest.h"

#define LAPIC_SVR           0x0F0
#define LAPIC_LVT_TIMER     0x320
#define LAPIC_TIMER_INIT    0x380
#define LAPIC_TIMER_DIVIDE  0x3E0
#define LVT_PERIODIC        (1u << 17)
#define LVT_MASKED          (1u << 16)
#define DIVIDE_BY_1         0xB

void lapic_timer_start(unsigned period_us)
{
    mmio_write32(LAPIC_BASE + LAPIC_SVR, mmio_read32(LAPIC_BASE + LAPIC_SVR) | 0x100);
    mmio_write32(LAPIC_BASE + LAPIC_TIMER_DIVIDE, DIVIDE_BY_1);
    mmio_write32(LAPIC_BASE + LAPIC_LVT_TIMER, LVT_PERIODIC | KILN_TIMER_VECTOR);
    mmio_write32(LAPIC_BASE + LAPIC_TIMER_INIT, period_us * 1000u);
}

void lapic_timer_stop(void)
{
    mmio_write32(LAPIC_BASE + LAPIC_LVT_TIMER, LVT_MASKED | KILN_TIMER_VECTOR);
    mmio_write32(LAPIC_BASE + LAPIC_TIMER_INIT, 0);
}
