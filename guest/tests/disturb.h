/*
 * What a Linux guest's CPUs go through besides context switches, for test=fsbase and test=tlb: timer interrupts
 * that land while ring 3 runs (`timer_us=N`, the local APIC timer every N µs, delivered into ring 0 and back), an
 * idle CPU halting until its next tick (`idle_every=N`: every N-th switch, which lets the host run something else
 * on that CPU), and exits to the VMM (`io_every=N` port writes, counted in checks).
 */
#ifndef KILN_DISTURB_H
#define KILN_DISTURB_H

#include "kiln_guest.h"

struct disturb {
    unsigned timer_us, idle_every, io_every;
};

static inline bool disturb_parse(const char *cmdline, struct disturb *d)
{
    d->timer_us = (unsigned)arg_u64(cmdline, "timer_us", 0);
    d->idle_every = (unsigned)arg_u64(cmdline, "idle_every", 0);
    d->io_every = (unsigned)arg_u64(cmdline, "io_every", 0);
    if (d->idle_every && !d->timer_us) {
        puts("idle_every needs timer_us (nothing else wakes a halted CPU)");
        return false;
    }
    return d->timer_us <= 4000000;
}

static inline void disturb_start(const struct disturb *d)
{
    if (!d->timer_us)
        return;
    lapic_timer_start(d->timer_us);
    kiln_service(KILN_SVC_USER_IF, 1);
}

static inline void disturb_switch(const struct disturb *d, uint64_t round)
{
    if (d->idle_every && round % d->idle_every == d->idle_every - 1)
        kiln_service(KILN_SVC_IDLE, 0);
}

static inline void disturb_check(const struct disturb *d, unsigned k)
{
    if (d->io_every && k % d->io_every == d->io_every - 1)
        outb(0, 0x80);  /* an ignored port: one exit to the VMM */
}

static inline void disturb_stop(const struct disturb *d)
{
    if (!d->timer_us)
        return;
    kiln_service(KILN_SVC_USER_IF, 0);
    lapic_timer_stop();
}

#endif
