/*
 * test=xstate: vector state at ring 3 that a guest kernel without XSAVE cannot switch.
 *
 * This guest never sets CR4.OSXSAVE or XCR0, as the guest kit's Linux with `noxsave` does not. On VMX/SVM an
 * AVX instruction then raises #UD. On a PVM host ring 3 runs natively under the host's CR4 and XCR0, so native
 * CPUID says OSXSAVE, XGETBV returns the host's XCR0 and AVX/AVX-512 instructions run; glibc's ifuncs pick their
 * EVEX versions (which use ymm16-31 and the mask registers). The guest kernel switches tasks with FXSAVE/FXRSTOR,
 * which cover x87 and XMM0-15 only, so those registers leak from one guest task to the next.
 *
 * The test reports the ring-3 view (CPUID OSXSAVE, XGETBV, the guest's own CR4.OSXSAVE) and then plays two tasks
 * on one CPU with FXSAVE/FXRSTOR context switches at ring 0: task A puts a value in xmm1 and (if AVX-512 runs)
 * in ymm16, task B overwrites both, back to A. xmm1 must come back (FXRSTOR restores it); ymm16 comes back as B's
 * value: `ymm16 lost: yes`. With `cpus=2` task A then moves to CPU 1 (FXRSTOR of its image there, as after a
 * migration) and reads both again: ymm16 holds CPU 1's own value, zero where nothing used it yet.
 * Exit 0 when xmm1 survived (whatever happened to ymm16), 1 otherwise; the printed lines are the result.
 */
#include "tests.h"

#define RING0 __attribute__((target("general-regs-only"), noinline))

static uint8_t area_a[512] __attribute__((aligned(16)));
static uint8_t area_b[512] __attribute__((aligned(16)));
static uint8_t *volatile save_to, *volatile load_from;

/* A kernel's FPU switch without XSAVE: FXSAVE the old task, FXRSTOR the next one. */
RING0 static uint64_t fx_switch(void)
{
    __asm__ volatile("fxsave (%0)\n\tfxrstor (%1)" : : "r"(save_to), "r"(load_from) : "memory");
    return 0;
}

RING0 static uint64_t read_cr4(void)
{
    uint64_t cr4;
    __asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
    return cr4;
}

RING0 static uint64_t fx_restore(void)
{
    __asm__ volatile("fxrstor (%0)" : : "r"(load_from) : "memory");
    return 0;
}

static volatile bool moved, moved_avx512;
static volatile uint64_t moved_xmm1, moved_ymm16;

static uint64_t get_xmm1(void);
static uint64_t get_ymm16(void);

/* CPU 1: task A resumes here after a "migration": its FXSAVE image restored, nothing else. */
static void resume_on_cpu1(unsigned slot)
{
    if (slot != 1)
        return;
    load_from = area_a;
    kiln_service(KILN_SVC_RING0_CALL, (uint64_t)fx_restore);
    moved_xmm1 = get_xmm1();
    if (moved_avx512)
        moved_ymm16 = get_ymm16();
    moved = true;
}

static void switch_tasks(uint8_t *from, uint8_t *to)
{
    save_to = from;
    load_from = to;
    kiln_service(KILN_SVC_RING0_CALL, (uint64_t)fx_switch);
}

static void set_regs(uint64_t v, bool avx512)
{
    __asm__ volatile("movq %0, %%xmm1" : : "r"(v) : "xmm1");
    if (avx512)
        __asm__ volatile("movq %0, %%rax\n\t.byte 0x62,0xe2,0xfd,0x28,0x7c,0xc0" /* vpbroadcastq %rax, %ymm16 */
                         : : "r"(v) : "rax");
}

static uint64_t get_xmm1(void)
{
    uint64_t v;
    __asm__ volatile("movq %%xmm1, %0" : "=r"(v));
    return v;
}

static uint64_t get_ymm16(void)
{
    uint64_t v;
    __asm__ volatile(".byte 0x62,0xe1,0xfd,0x08,0x7e,0xc0\n\t" /* vmovq %xmm16, %rax */
                     "movq %%rax, %0" : "=r"(v) : : "rax");
    return v;
}

int test_xstate(const char *cmdline)
{
    unsigned cpus = (unsigned)arg_u64(cmdline, "cpus", 1);
    uint32_t r[4];
    cpuid_native(1, 0, r);
    bool osxsave = r[2] & (1u << 27);
    uint64_t xcr0 = 0;
    if (osxsave) {
        uint32_t lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        xcr0 = ((uint64_t)hi << 32) | lo;
    }
    cpuid_native(7, 0, r);
    bool avx512 = osxsave && (xcr0 & 0xe6) == 0xe6 && (r[1] & (1u << 16)) && (r[1] & (1u << 31));
    uint64_t cr4 = kiln_service(KILN_SVC_RING0_CALL, (uint64_t)read_cr4);
    printf("xstate: guest CR4.OSXSAVE %u; at ring 3: CPUID OSXSAVE %u, XGETBV 0x%lx, AVX-512 usable %s\n",
           (unsigned)((cr4 >> 18) & 1), osxsave, xcr0, avx512 ? "yes" : "no");

    /* Task A's state in area_a after the first switch; task B starts from a copy of it. */
    set_regs(0xAAAA000000000001ull, avx512);
    switch_tasks(area_a, area_a);
    memcpy(area_b, area_a, sizeof(area_b));
    switch_tasks(area_a, area_b);            /* A -> B */
    set_regs(0xBBBB000000000002ull, avx512);
    switch_tasks(area_b, area_a);            /* B -> A */
    uint64_t xmm1 = get_xmm1();
    printf("xstate: task A after a switch to B and back: xmm1 0x%lx (%s)", xmm1,
           xmm1 == 0xAAAA000000000001ull ? "kept" : "LOST");
    if (avx512) {
        uint64_t y = get_ymm16();
        printf(", ymm16 0x%lx, ymm16 lost: %s", y, y == 0xAAAA000000000001ull ? "no" : "yes");
    }
    printf("\n");
    if (cpus < 2)
        return xmm1 == 0xAAAA000000000001ull ? 0 : 1;

    /* Task A's image (xmm1 = A's value) was saved by the last switch; it now resumes on CPU 1. */
    moved_avx512 = avx512;
    smp_boot_aps(resume_on_cpu1);
    uint64_t until = rdtsc() + 2 * tsc_hz();
    while (!moved && (int64_t)(rdtsc() - until) < 0)
        cpu_relax();
    if (!moved) {
        puts("xstate: CPU 1 did not start");
        return 1;
    }
    printf("xstate: task A resumed on CPU 1: xmm1 0x%lx (%s)", moved_xmm1,
           moved_xmm1 == 0xAAAA000000000001ull ? "kept" : "LOST");
    if (avx512)
        printf(", ymm16 0x%lx (task A's: %s)", moved_ymm16, moved_ymm16 == 0xAAAA000000000001ull ? "yes" : "no");
    printf("\n");
    return xmm1 == 0xAAAA000000000001ull && moved_xmm1 == 0xAAAA000000000001ull ? 0 : 1;
}
