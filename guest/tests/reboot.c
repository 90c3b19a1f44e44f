/*
 * test=reboot: counts boots in CMOS NVRAM (register 0x38, which survives a reset as on a PC) and resets the
 * machine through the i8042 (command 0xFE) until it has booted `boots` times (default 2), then exits 0.
 * Checks that a guest reset reboots the machine and that the VMM keeps CMOS contents across it.
 */
#include "tests.h"

#define CMOS_INDEX 0x70
#define CMOS_DATA 0x71
#define BOOT_COUNTER 0x38
#define MAGIC 0xB0

static uint8_t cmos_read(uint8_t reg) { outb(reg, CMOS_INDEX); return inb(CMOS_DATA); }
static void cmos_write(uint8_t reg, uint8_t v) { outb(reg, CMOS_INDEX); outb(v, CMOS_DATA); }

int test_reboot(const char *cmdline)
{
    uint32_t wanted = (uint32_t)arg_u64(cmdline, "boots", 2);
    uint8_t v = cmos_read(BOOT_COUNTER);
    uint32_t boot = (v & 0xF0) == MAGIC ? (v & 0x0F) + 1u : 1u;
    printf("boot %u\n", boot);
    if (boot >= wanted || boot >= 15) {
        cmos_write(BOOT_COUNTER, 0);
        return 0;
    }
    cmos_write(BOOT_COUNTER, (uint8_t)(MAGIC | boot));
    outb(0xFE, 0x64); /* pulse the reset line */
    puts("reset did not happen");
    return 3;
}
