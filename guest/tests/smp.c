/*
 * test=smp cpus=N: bring up the APs with INIT-SIPI-SIPI, let each one check
 * in from ring 3, and report how many CPUs (including the BSP) came online.
 */
#include "tests.h"

#define NO_ID 0xffffffffu

static volatile unsigned online;
static volatile uint32_t apic_ids[KILN_MAX_CPUS];

static void ap_main(unsigned slot)
{
    apic_ids[slot] = cpu_apic_id();
    __atomic_fetch_add(&online, 1, __ATOMIC_SEQ_CST);   /* publishes apic_ids[slot] too */
}

int test_smp(const char *cmdline)
{
    unsigned want = (unsigned)arg_u64(cmdline, "cpus", 1);

    for (unsigned i = 0; i < KILN_MAX_CPUS; i++)
        apic_ids[i] = NO_ID;
    apic_ids[0] = cpu_apic_id();
    online = 1;

    uint64_t hz = tsc_hz();
    printf("smp: tsc %lu Hz, starting APs\n", hz);
    smp_boot_aps(ap_main);

    /* Up to 2 s in total; once N have arrived allow 100 ms for unexpected extras. */
    uint64_t now = rdtsc(), deadline = now + 2 * hz;
    bool reached = false;
    while ((int64_t)(now - deadline) < 0) {
        if (!reached && __atomic_load_n(&online, __ATOMIC_SEQ_CST) >= want) {
            reached = true;
            if ((int64_t)(now + hz / 10 - deadline) < 0)
                deadline = now + hz / 10;
        }
        cpu_relax();
        now = rdtsc();
    }

    unsigned k = __atomic_load_n(&online, __ATOMIC_SEQ_CST);
    printf("cpus online: %u\n", k);
    bool distinct = true;
    for (unsigned i = 0; i < KILN_MAX_CPUS; i++) {
        if (apic_ids[i] == NO_ID)
            continue;
        printf("cpu %u apic id %u\n", i, apic_ids[i]);
        for (unsigned j = 0; j < i; j++)
            distinct &= apic_ids[j] != apic_ids[i];
    }
    if (!distinct)
        puts("smp: duplicate apic ids");
    return k == want && distinct ? 0 : 1;
}
