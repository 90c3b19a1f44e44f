/*
 * test=emulate: runs, at ring 0 (service RING0_CALL), the instructions a PVM host's KVM cannot emulate and the
 * VMM completes instead: FNINIT, FLDCW/FNSTCW, FNSTSW (AX and m16), FNCLEX, FWAIT, EMMS, LDMXCSR/STMXCSR,
 * FXSAVE/FXRSTOR, XSAVE/XRSTOR (when the CPU has XSAVE: sets CR4.OSXSAVE and XCR0 = x87|SSE), CMPXCHG16B,
 * INT3 (through a #BP gate this test installs) and STAC/CLAC (when CPUID has SMAP). Ring 0 is emulated, so every one of them reaches Kiln's fallback.
 * Prints "emulate ok" and returns 0, or one line per failed check and returns 1.
 *
 * The ring-0 functions are integer-only C (target general-regs-only) with the instructions in inline asm; the
 * ring-3 FPU/SSE state is saved with FXSAVE first and restored with FXRSTOR at the end. On the PVM host KVM
 * itself handles FNINIT, FNSTCW, one of the FNSTSWs, FXSAVE/FXRSTOR and XSETBV (its FXSAVE writes all 512 bytes), so
 * only the others reach the fallback there.
 */
#include "tests.h"

#define RING0 __attribute__((target("general-regs-only"), noinline))
#define MAX_FAILS 32

static struct {
    int count;
    const char *what[MAX_FAILS];
    uint64_t got[MAX_FAILS], want[MAX_FAILS];
    int xsave;                      /* 1 if the XSAVE checks ran */
    int smap;                       /* 1 if the STAC/CLAC checks ran */
} result;

static uint8_t saved[512] __attribute__((aligned(64)));
static uint8_t image[1024] __attribute__((aligned(64)));
static uint8_t out[1024] __attribute__((aligned(64)));
static volatile uint64_t pair[2] __attribute__((aligned(16)));

/* #BP handler: counts and records the saved RIP (a trap: the address after the int3). */
uint64_t emu_bp_count, emu_bp_rip;
void emu_bp_stub(void);
__asm__(".text\n"
        ".globl emu_bp_stub\n"
        "emu_bp_stub:\n"
        "    incq emu_bp_count(%rip)\n"
        "    pushq %rax\n"
        "    movq 8(%rsp), %rax\n"
        "    movq %rax, emu_bp_rip(%rip)\n"
        "    popq %rax\n"
        "    iretq\n");

struct gate { uint16_t lo, sel; uint8_t ist, attr; uint16_t mid; uint32_t hi, zero; } __attribute__((packed));
struct dtr { uint16_t limit; uint64_t base; } __attribute__((packed));

RING0 static void check(const char *what, uint64_t got, uint64_t want)
{
    if (got == want || result.count >= MAX_FAILS)
        return;
    result.what[result.count] = what;
    result.got[result.count] = got;
    result.want[result.count] = want;
    result.count++;
}

RING0 static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
RING0 static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)v); put16(p + 2, (uint16_t)(v >> 16)); }
RING0 static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
RING0 static uint32_t get32(const uint8_t *p) { return get16(p) | (uint32_t)get16(p + 2) << 16; }
RING0 static uint64_t get64(const uint8_t *p) { return get32(p) | (uint64_t)get32(p + 4) << 32; }
RING0 static void fill(uint8_t *p, size_t n, uint8_t v) { for (size_t i = 0; i < n; i++) p[i] = v; }

RING0 static void x87_checks(void)
{
    uint16_t cw = 0, sw = 0xffff;
    __asm__ volatile("fninit");
    __asm__ volatile("fnstcw %0" : "=m"(cw));
    check("fninit/fnstcw", cw, 0x037f);
    __asm__ volatile("fnstsw %0" : "=a"(sw));
    check("fninit/fnstsw ax", sw, 0);

    cw = 0x027f;
    __asm__ volatile("fldcw %0" : : "m"(cw));
    cw = 0;
    __asm__ volatile("fnstcw %0" : "=m"(cw));
    check("fldcw", cw, 0x027f);

    /* A state with the (masked) invalid-operation flag set and every register tagged valid, via FXRSTOR. */
    fill(image, 512, 0);
    put16(image + 0, 0x037f);
    put16(image + 2, 0x0001);
    image[4] = 0xff;
    put32(image + 24, 0x1f80);
    fill(image + 160, 16, 0x5a);            /* xmm0 */
    __asm__ volatile("fxrstor64 (%0)" : : "r"(image) : "memory");
    __asm__ volatile("fnstsw %0" : "=a"(sw));
    check("fxrstor/fnstsw ax", sw, 0x0001);
    __asm__ volatile("fnclex");
    sw = 0xffff;
    __asm__ volatile("fnstsw %0" : "=m"(sw));
    check("fnclex/fnstsw m16", sw, 0);
    __asm__ volatile("fwait");              /* nothing pending: no #MF */
    __asm__ volatile("emms");
    fill(out, 512, 0xee);
    __asm__ volatile("fxsave64 (%0)" : : "r"(out) : "memory");
    check("emms: tag word", out[4], 0);
    check("fxsave: fcw", get16(out), 0x037f);
    check("fxsave: mxcsr", get32(out + 24), 0x1f80);
    check("fxsave: xmm0", get64(out + 160), 0x5a5a5a5a5a5a5a5aull);
}

RING0 static void mxcsr_checks(void)
{
    uint32_t m = 0x1fa0, got = 0;
    __asm__ volatile("ldmxcsr %0" : : "m"(m));
    __asm__ volatile("stmxcsr %0" : "=m"(got));
    check("ldmxcsr/stmxcsr", got, 0x1fa0);
    m = 0x1f80;
    __asm__ volatile("ldmxcsr %0" : : "m"(m));
}

RING0 static void cmpxchg16b_checks(void)
{
    pair[0] = 1;
    pair[1] = 2;
    uint64_t lo = 1, hi = 2;
    uint8_t zf;
    __asm__ volatile("lock cmpxchg16b %1; setz %0"
                     : "=q"(zf), "+m"(*(volatile uint64_t (*)[2])pair), "+a"(lo), "+d"(hi)
                     : "b"(3ull), "c"(4ull) : "memory", "cc");
    check("cmpxchg16b equal: zf", zf, 1);
    check("cmpxchg16b equal: low", pair[0], 3);
    check("cmpxchg16b equal: high", pair[1], 4);
    lo = 9;
    hi = 9;
    __asm__ volatile("lock cmpxchg16b %1; setz %0"
                     : "=q"(zf), "+m"(*(volatile uint64_t (*)[2])pair), "+a"(lo), "+d"(hi)
                     : "b"(5ull), "c"(6ull) : "memory", "cc");
    check("cmpxchg16b differ: zf", zf, 0);
    check("cmpxchg16b differ: rax", lo, 3);
    check("cmpxchg16b differ: rdx", hi, 4);
    check("cmpxchg16b differ: memory kept", pair[0], 3);
}

RING0 static void int3_checks(void)
{
    struct dtr idtr;
    __asm__ volatile("sidt %0" : "=m"(idtr));
    struct gate *bp = (struct gate *)(idtr.base + 3 * sizeof(struct gate));
    struct gate old = *bp;
    uint64_t h = (uint64_t)emu_bp_stub;
    struct gate g = { (uint16_t)h, SEL_KCODE64, 0, 0x8e, (uint16_t)(h >> 16), (uint32_t)(h >> 32), 0 };
    *bp = g;
    uint64_t after;
    emu_bp_count = 0;
    __asm__ volatile("int3\n1:\tleaq 1b(%%rip), %0" : "=r"(after) : : "memory");
    *bp = old;
    check("int3: #BP handler ran", emu_bp_count, 1);
    check("int3: saved rip after int3", emu_bp_rip, after);
}

RING0 static void xsave_checks(void)
{
    uint32_t a, b, c, d;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
    if (!(c & (1u << 26)))
        return;
    result.xsave = 1;
    uint64_t cr4;
    __asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
    __asm__ volatile("mov %0, %%cr4" : : "r"(cr4 | (1ull << 18)));
    __asm__ volatile("xsetbv" : : "c"(0), "a"(3), "d"(0));

    fill(image, sizeof(image), 0);
    put16(image + 0, 0x037f);
    put32(image + 24, 0x1f80);
    fill(image + 176, 16, 0xa5);            /* xmm1 */
    image[512] = 3;                         /* XSTATE_BV = x87 | SSE */
    __asm__ volatile("xrstor64 (%0)" : : "r"(image), "a"(~0u), "d"(~0u) : "memory");
    fill(out, sizeof(out), 0);
    out[512] = 0x80;                        /* a bit outside RFBM: XSAVE must keep it */
    __asm__ volatile("xsave64 (%0)" : : "r"(out), "a"(3), "d"(0) : "memory");
    check("xrstor/xsave: xmm1", get64(out + 176), 0xa5a5a5a5a5a5a5a5ull);
    check("xsave: mxcsr", get32(out + 24), 0x1f80);
    check("xsave: xstate_bv sse", out[512] & 2, 2);
    check("xsave: xstate_bv outside rfbm kept", out[512] & 0x80, 0x80);

    image[512] = 1;                         /* SSE in its initial state: XMM registers cleared */
    __asm__ volatile("xrstor64 (%0)" : : "r"(image), "a"(3), "d"(0) : "memory");
    fill(out, 512, 0xee);
    __asm__ volatile("fxsave64 (%0)" : : "r"(out) : "memory");
    check("xrstor init sse: xmm1", get64(out + 176), 0);
}

RING0 static uint64_t rflags(void)
{
    uint64_t f;
    __asm__ volatile("pushfq; popq %0" : "=r"(f));
    return f;
}

RING0 static void smap_checks(void)
{
    uint32_t a, b, c, d;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(0));
    if (!(b & (1u << 20)))
        return;
    result.smap = 1;
    __asm__ volatile("stac" ::: "cc");
    check("stac: rflags.ac", rflags() & (1ull << 18), 1ull << 18);
    __asm__ volatile("clac" ::: "cc");
    check("clac: rflags.ac", rflags() & (1ull << 18), 0);
}

RING0 static uint64_t ring0_body(void)
{
    __asm__ volatile("fxsave64 (%0)" : : "r"(saved) : "memory");
    x87_checks();
    mxcsr_checks();
    cmpxchg16b_checks();
    int3_checks();
    xsave_checks();
    smap_checks();
    __asm__ volatile("fxrstor64 (%0)" : : "r"(saved) : "memory");
    return 0x600d;
}

int test_emulate(const char *cmdline)
{
    (void)cmdline;
    uint64_t r = kiln_service(KILN_SVC_RING0_CALL, (uint64_t)ring0_body);
    if (r != 0x600d) {
        printf("emulate: ring-0 call returned 0x%lx\n", r);
        return 1;
    }
    if (!result.xsave)
        puts("emulate: no XSAVE in CPUID, XSAVE/XRSTOR skipped");
    if (!result.smap)
        puts("emulate: no SMAP in CPUID, STAC/CLAC skipped");
    for (int i = 0; i < result.count; i++)
        printf("emulate FAIL %s: got 0x%lx want 0x%lx\n", result.what[i], result.got[i], result.want[i]);
    if (result.count)
        return 1;
    puts("emulate ok");
    return 0;
}
