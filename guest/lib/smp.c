/*
 * Application-processor start-up from ring 3: copy the real-mode trampoline
 * to low memory and send INIT-SIPI-SIPI through the local APIC (MMIO, mapped
 * user-accessible). Each AP then runs boot/ap_trampoline.S -> ap_entry32 ->
 * ap_entry64 -> ap_user_start() below at ring 3.
 */
#include "kiln_guest.h"

#define LAPIC_SVR       0x0F0
#define LAPIC_ICR_LO    0x300
#define LAPIC_ICR_HI    0x310
#define ICR_INIT        0x00000500
#define ICR_STARTUP     0x00000600
#define ICR_ASSERT      0x00004000
#define ICR_BUSY        0x00001000      /* delivery status */
#define ICR_ALL_BUT_SELF 0x000C0000

extern const char ap_trampoline_start[], ap_trampoline_end[];

static void (*volatile ap_entry)(unsigned slot);

static void lapic_write(uint32_t reg, uint32_t v) { mmio_write32(LAPIC_BASE + reg, v); }
static uint32_t lapic_read(uint32_t reg) { return mmio_read32(LAPIC_BASE + reg); }

static void send_ipi_all_but_self(uint32_t icr)
{
    lapic_write(LAPIC_ICR_HI, 0);
    lapic_write(LAPIC_ICR_LO, ICR_ALL_BUT_SELF | icr);
    for (int i = 0; i < 100000 && (lapic_read(LAPIC_ICR_LO) & ICR_BUSY); i++)
        cpu_relax();
}

void smp_boot_aps(void (*entry)(unsigned slot))
{
    ap_entry = entry;
    memcpy((void *)AP_TRAMPOLINE_ADDR, ap_trampoline_start,
           (size_t)(ap_trampoline_end - ap_trampoline_start));
    __atomic_thread_fence(__ATOMIC_SEQ_CST);

    lapic_write(LAPIC_SVR, lapic_read(LAPIC_SVR) | 0x100);  /* software-enable */
    send_ipi_all_but_self(ICR_INIT | ICR_ASSERT);
    delay_us(10000);
    for (int i = 0; i < 2; i++) {           /* second SIPI is ignored by CPUs already running */
        send_ipi_all_but_self(ICR_STARTUP | ICR_ASSERT | (AP_TRAMPOLINE_ADDR >> 12));
        delay_us(200);
    }
}

/* Ring-3 entry of every AP (from boot/entry64.S). */
void ap_user_start(unsigned slot);

void ap_user_start(unsigned slot)
{
    if (ap_entry)
        ap_entry(slot);
    halt_cpu();
}
