/*
 * test=poweroff: powers the machine off the way an ACPI OS does: SLP_TYP=5 (the DSDT's \_S5) with SLP_EN in the
 * PM1a control register the FADT names (port 0x604 on Kiln). The VMM should exit with status 0; returning from
 * the write means the power-off did not happen.
 */
#include "tests.h"

int test_poweroff(const char *cmdline)
{
    uint16_t port = (uint16_t)arg_u64(cmdline, "pm1a_cnt", 0x604);
    puts("powering off through ACPI S5");
    outw((uint16_t)((5 << 10) | (1 << 13)), port);
    puts("still running after S5");
    return 3;
}
