/*
 * test=ptwrite: ring-3 writes, by instruction kind, to a page the hypervisor still shadows as a page table.
 *
 * A page that served as a page table (and was walked, so a shadowing hypervisor write-protects it) and then is
 * reused as data is what a Linux guest's exec hands a new process: the old process's page tables were just freed.
 * On a PVM host the first write to it traps, and KVM has to emulate that write or unprotect the page and re-run
 * it. KVM's emulator knows plain MOVs, string moves and some SSE moves, not VEX or EVEX (AVX, AVX-512) ones, and
 * glibc's memcpy at ring 3 uses those there: ring-3 CPUID shows the host's features, and with the guest's
 * CR4.OSXSAVE off the host's XCR0 stays loaded.
 *
 * Each round: build an address space whose leaf page table is page T, switch to it and read through it (T is now
 * shadowed), switch back, then write a new 64-byte pattern into T from ring 3 with one kind of instruction and read
 * it back. A write that does not land is counted. Kinds: mov, rep-movsb, sse (movdqu), avx (vmovdqu ymm),
 * avx512 (vmovdqu64 zmm); the vector ones only if native CPUID and XCR0 allow them.
 *
 * Options: `seconds` (2 per kind), `kinds=all|mov|movsb|sse|avx|avx512`. Exit 0 when every write landed, 1 if not.
 */
#include "tests.h"

#define AREA            0x2800000ul         /* 40 MiB: PML4, PDPT, PD, T (the leaf table), data page */
#define PAGE            0x1000ul
#define PRIVATE_VA      0x8000000000ul
#define TABLE_FLAGS     0x7ul

extern uint64_t pml4[512];                  /* boot/pagetables.S */

enum kind { KIND_MOV, KIND_MOVSB, KIND_SSE, KIND_AVX, KIND_AVX512, KIND_COUNT };
static const char *const kind_names[KIND_COUNT] = { "mov", "movsb", "sse", "avx", "avx512" };

static uint64_t *area_page(unsigned n) { return (uint64_t *)(AREA + n * PAGE); }

static bool vector_usable(enum kind k)
{
    uint32_t r[4];
    cpuid_native(1, 0, r);
    if (k == KIND_SSE)
        return true;
    if (!(r[2] & (1u << 27)))               /* OSXSAVE as the hardware sees it */
        return false;
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    (void)hi;
    cpuid_native(7, 0, r);
    if (k == KIND_AVX)
        return (lo & 0x6) == 0x6 && (r[1] & (1u << 5));                     /* YMM state, AVX2 */
    return (lo & 0xe6) == 0xe6 && (r[1] & (1u << 16));                      /* ZMM state, AVX-512F */
}

/* Writes 64 bytes from src to dst (64-byte aligned) with the chosen instruction kind. */
static void write64(enum kind k, void *dst, const void *src)
{
    switch (k) {
    case KIND_MOV:
        for (int i = 0; i < 8; i++)
            ((volatile uint64_t *)dst)[i] = ((const uint64_t *)src)[i];
        break;
    case KIND_MOVSB: {
        void *d = dst;
        const void *s = src;
        size_t n = 64;
        __asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
        break;
    }
    case KIND_SSE:
        for (int i = 0; i < 4; i++)
            __asm__ volatile("movdqu (%1), %%xmm0\n\tmovdqu %%xmm0, (%0)"
                             : : "r"((char *)dst + 16 * i), "r"((const char *)src + 16 * i) : "xmm0", "memory");
        break;
    case KIND_AVX:
        for (int i = 0; i < 2; i++)
            __asm__ volatile(".byte 0xc5,0xfe,0x6f,0x06\n\t"      /* vmovdqu (%rsi), %ymm0 */
                             ".byte 0xc5,0xfe,0x7f,0x07\n\t"      /* vmovdqu %ymm0, (%rdi) */
                             ".byte 0xc5,0xf8,0x77"               /* vzeroupper */
                             : : "D"((char *)dst + 32 * i), "S"((const char *)src + 32 * i) : "memory");
        break;
    case KIND_AVX512:
        __asm__ volatile(".byte 0x62,0xf1,0xfe,0x48,0x6f,0x06\n\t" /* vmovdqu64 (%rsi), %zmm0 */
                         ".byte 0x62,0xf1,0xfe,0x48,0x7f,0x07\n\t" /* vmovdqu64 %zmm0, (%rdi) */
                         ".byte 0xc5,0xf8,0x77"                    /* vzeroupper */
                         : : "D"(dst), "S"(src) : "memory");
        break;
    default:
        break;
    }
}

/* Make T a walked leaf page table again, then leave it. */
static void shadow_table(void)
{
    uint64_t *pml = area_page(0), *pdpt = area_page(1), *pd = area_page(2), *t = area_page(3);
    memset(t, 0, PAGE);
    t[0] = (uint64_t)area_page(4) | TABLE_FLAGS;
    kiln_service2(KILN_SVC_SWITCH_TASK, (uint64_t)pml, 0);
    (void)*(volatile uint64_t *)PRIVATE_VA;   /* walks PML4 -> PDPT -> PD -> T */
    kiln_service2(KILN_SVC_SWITCH_TASK, (uint64_t)pml4, 0);
    (void)pdpt;
    (void)pd;
}

int test_ptwrite(const char *cmdline)
{
    uint64_t seconds = arg_u64(cmdline, "seconds", 2);
    const char *only = arg_str(cmdline, "kinds");
    uint64_t *pml = area_page(0), *pdpt = area_page(1), *pd = area_page(2);
    memcpy(pml, pml4, PAGE);
    memset(pdpt, 0, PAGE);
    memset(pd, 0, PAGE);
    pml[PRIVATE_VA >> 39] = (uint64_t)pdpt | TABLE_FLAGS;
    pdpt[0] = (uint64_t)pd | TABLE_FLAGS;
    pd[0] = (uint64_t)area_page(3) | TABLE_FLAGS;
    area_page(4)[0] = 0x5eed;

    uint64_t hz = tsc_hz();
    uint64_t total_lost = 0;
    static uint64_t pattern[8] __attribute__((aligned(64)));
    for (enum kind k = 0; k < KIND_COUNT; k++) {
        if (only && strcmp(only, "all") != 0 && strcmp(only, kind_names[k]) != 0)
            continue;
        if (k >= KIND_SSE && !vector_usable(k)) {
            printf("ptwrite %s: not available at ring 3 here\n", kind_names[k]);
            continue;
        }
        uint64_t rounds = 0, lost = 0, first_lost = 0, seen = 0, write_cycles = 0;
        uint64_t deadline = rdtsc() + seconds * hz;
        while ((int64_t)(rdtsc() - deadline) < 0) {
            shadow_table();
            uint64_t *t = area_page(3) + 64;   /* bytes 512..575 of T: page-table entries 64..71 */
            for (int i = 0; i < 8; i++)
                pattern[i] = 0xA11CE00000000000ull | (rounds << 8) | (uint64_t)(k << 4) | (uint64_t)i;
            uint64_t t0 = rdtsc();
            write64(k, t, pattern);
            write_cycles += rdtsc() - t0;
            bool ok = true;
            for (int i = 0; i < 8; i++)
                if (((volatile uint64_t *)t)[i] != pattern[i]) {
                    ok = false;
                    seen = ((volatile uint64_t *)t)[i];
                }
            if (!ok && lost++ == 0)
                first_lost = rounds;
            rounds++;
        }
        /* A write that traps to the hypervisor takes microseconds, a native one nanoseconds. */
        printf("ptwrite %s: rounds %lu, %lu ns per write, lost writes %lu", kind_names[k], rounds,
               rounds ? write_cycles * 1000000000 / hz / rounds : 0, lost);
        if (lost)
            printf(" (first in round %lu, read 0x%lx)", first_lost, seen);
        printf("\n");
        total_lost += lost;
    }
    printf("ptwrite: lost writes %lu\n", total_lost);
    return total_lost == 0 ? 0 : 1;
}
