/*
 * test=pio count=N port=P: benchmark workload, N back-to-back outb exits
 * (no LSR polling), timed with the TSC.
 */
#include "tests.h"

int test_pio(const char *cmdline)
{
    uint64_t n = arg_u64(cmdline, "count", 1000000);
    uint16_t port = (uint16_t)arg_u64(cmdline, "port", 0x3F8);

    puts("pio start");
    uint8_t c = ' ';
    uint64_t t0 = rdtsc();
    for (uint64_t i = 0; i < n; i++) {
        outb(c, port);
        c = c == '~' ? ' ' : c + 1;         /* cycle through printable ASCII */
    }
    uint64_t cycles = rdtsc() - t0;
    printf("\npio done %lu cycles %lu\n", n, cycles);
    return 0;
}
