/*
 * test=rtc: reads the date and time from the CMOS RTC (ports 0x70/0x71), honouring register B's binary/BCD and
 * 12/24-hour bits, and prints "rtc YYYY-MM-DD HH:MM:SS" (UTC, as Kiln and QEMU present it) for the host to compare.
 */
#include "tests.h"

static uint8_t cmos(uint8_t reg) { outb(reg, 0x70); return inb(0x71); }

static unsigned field(uint8_t v, int binary) { return binary ? v : (unsigned)((v >> 4) * 10 + (v & 0x0F)); }

int test_rtc(const char *cmdline)
{
    (void)cmdline;
    while (cmos(0x0A) & 0x80) /* update in progress: wait for a stable second */
        cpu_relax();
    uint8_t b = cmos(0x0B);
    int binary = (b & 0x04) != 0, h24 = (b & 0x02) != 0;
    uint8_t hour = cmos(0x04);
    unsigned h = field(hour & 0x7F, binary);
    if (!h24 && (hour & 0x80))
        h = (h % 12) + 12;
    unsigned year = field(cmos(0x32), binary) * 100 + field(cmos(0x09), binary);
    printf("rtc %u-%02u-%02u %02u:%02u:%02u\n", year, field(cmos(0x08), binary), field(cmos(0x07), binary), h,
           field(cmos(0x02), binary), field(cmos(0x00), binary));
    return 0;
}
