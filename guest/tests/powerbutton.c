/*
 * test=powerbutton: an ACPI OS's view of the fixed-feature power button. Sets PWRBTN_EN (PM1a enable register,
 * bit 8), then waits for PWRBTN_STS (PM1a status register, bit 8). A real OS takes the SCI; this guest runs with
 * interrupts off, so it polls. Then it clears the status bit (write one to clear) and powers off through S5, as
 * an OS does when the button is pressed. The host presses the button with `kiln shutdown`.
 */
#include "tests.h"

#define PWRBTN (1 << 8)

int test_powerbutton(const char *cmdline)
{
    uint16_t evt = (uint16_t)arg_u64(cmdline, "pm1a_evt", 0x600);
    uint16_t cnt = (uint16_t)arg_u64(cmdline, "pm1a_cnt", 0x604);
    outw(PWRBTN, (uint16_t)(evt + 2));
    if (!(inw((uint16_t)(evt + 2)) & PWRBTN)) {
        puts("powerbutton: PWRBTN_EN did not stick");
        return 1;
    }
    puts("powerbutton: armed");
    while (!(inw(evt) & PWRBTN))
        cpu_relax();
    outw(PWRBTN, evt);
    if (inw(evt) & PWRBTN) {
        puts("powerbutton: PWRBTN_STS did not clear");
        return 2;
    }
    puts("powerbutton: pressed; powering off");
    outw((uint16_t)((5 << 10) | (1 << 13)), cnt);
    puts("powerbutton: still running after S5");
    return 3;
}
