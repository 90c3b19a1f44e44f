/*
 * test=dirty [mb=64] [static_mb=16] [tick_ms=100] [ticks=0]: the live-migration workload.
 * Prints "tick N" every tick_ms (the counter a migration test checks for gaps and repeats) while it keeps
 * rewriting every page of an mb-MiB region, and checks what it reads back: page i must still hold the pass number
 * written in the previous pass, so a page a migration failed to carry shows up as "DIRTY MISMATCH". A static
 * static_mb-MiB region is filled once with a pattern; its checksum is printed at start and re-verified every
 * 10 ticks ("check N ok", or "STATIC BAD" and exit 3). ticks=0 runs forever.
 */
#include "tests.h"

#define PAGE 4096UL
#define STATIC_BASE 0x2000000UL     /* 32 MiB: above the image, stacks and the SMP trampoline */

static uint64_t static_sum(volatile uint64_t *p, uint64_t words)
{
    uint64_t sum = 0;
    for (uint64_t i = 0; i < words; i++)
        sum = sum * 31 + p[i];
    return sum;
}

int test_dirty(const char *cmdline)
{
    uint64_t mb = arg_u64(cmdline, "mb", 64);
    uint64_t static_mb = arg_u64(cmdline, "static_mb", 16);
    uint64_t tick_ms = arg_u64(cmdline, "tick_ms", 100);
    uint64_t max_ticks = arg_u64(cmdline, "ticks", 0);
    volatile uint64_t *stat = (volatile uint64_t *)STATIC_BASE;
    volatile uint8_t *dirty = (volatile uint8_t *)(STATIC_BASE + (static_mb << 20));
    uint64_t static_words = (static_mb << 20) / 8;
    uint64_t pages = (mb << 20) / PAGE;

    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (uint64_t i = 0; i < static_words; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        stat[i] = x;
    }
    uint64_t sum = static_sum(stat, static_words);
    printf("dirty start mb=%lu static sum %lx\n", mb, sum);

    uint64_t tick_cycles = tsc_hz() / 1000 * tick_ms;
    uint64_t next = rdtsc() + tick_cycles;
    uint64_t tick = 0;
    for (uint64_t pass = 1;; pass++) {
        /* mb=0 (an idle guest for the benchmark) only ticks. */
        for (uint64_t i = 0; i < pages || (pages == 0 && i == 0); i++) {
            if (pages) {
                volatile uint64_t *word = (volatile uint64_t *)(dirty + i * PAGE);
                if (*word != pass - 1) {
                    printf("DIRTY MISMATCH page %lu holds %lu, expected %lu\n", i, *word, pass - 1);
                    return 2;
                }
                *word = pass;
            }
            if ((i & 255) == 0 && rdtsc() >= next) {
                next += tick_cycles;
                tick++;
                printf("tick %lu\n", tick);
                if (tick % 10 == 0) {
                    if (static_sum(stat, static_words) != sum) {
                        puts("STATIC BAD");
                        return 3;
                    }
                    printf("check %lu ok\n", tick);
                }
                if (max_ticks && tick >= max_ticks)
                    return 0;
            }
        }
    }
}
