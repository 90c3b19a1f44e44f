/*
 * Ring-0 exception handler. A #UD raised by "ud2" with RAX = KILN_SVC_MAGIC
 * is a service call from ring 3 (int/syscall do not work on the PVM host);
 * everything else is reported on COM1 and ends the run with exit code 0x7e.
 */
#include "kernel.h"

typedef uint64_t (*service_fn)(struct trap_frame *f, uint64_t arg);

static uint64_t svc_ping(struct trap_frame *f, uint64_t arg)
{
    (void)f;
    return arg + 1;
}

/* With an IDT limit of 0 the #UD cannot be delivered: #GP -> #DF -> triple fault. */
static uint64_t svc_triple_fault(struct trap_frame *f, uint64_t arg)
{
    (void)f;
    (void)arg;
    static const struct __attribute__((packed)) { uint16_t limit; uint64_t base; } no_idt = { 0, 0 };
    __asm__ volatile("lidt %0\n\tud2" : : "m"(no_idt));
    halt_forever();
}

static uint64_t svc_halt(struct trap_frame *f, uint64_t arg)
{
    (void)f;
    (void)arg;
    halt_forever();
}

/* Runs emulated at ring 0, so KVM answers with the guest's CPUID. */
static uint64_t svc_cpuid(struct trap_frame *f, uint64_t leaf)
{
    uint32_t a, b, c, d;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"((uint32_t)leaf), "c"((uint32_t)f->rdx));
    f->rbx = b;
    f->rcx = c;
    f->rdx = d;
    return a;
}

/* Runs test code at ring 0 (e.g. tests/emulate.c); the function is the test's business. */
static uint64_t svc_ring0_call(struct trap_frame *f, uint64_t fn)
{
    (void)f;
    return ((uint64_t (*)(void))fn)();
}

/* Emulated WRMSR/RDMSR at ring 0 (tests/fsbase.c sets MSR_FS_BASE like a kernel switching tasks). */
static uint64_t svc_wrmsr(struct trap_frame *f, uint64_t msr)
{
    __asm__ volatile("wrmsr" : : "c"((uint32_t)msr), "a"((uint32_t)f->rdx), "d"((uint32_t)(f->rdx >> 32)) : "memory");
    return 0;
}

static uint64_t svc_rdmsr(struct trap_frame *f, uint64_t msr)
{
    (void)f;
    uint32_t lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"((uint32_t)msr));
    return ((uint64_t)hi << 32) | lo;
}

/*
 * What Linux 6.1 (without PCID and FSGSBASE) does when it switches to another task: load its page tables (MOV CR3
 * flushes the non-global TLB entries) and its FS state (load_seg_legacy(): a zero base is a null selector load,
 * preceded by __USER_DS on CPUs with X86_BUG_NULL_SEG; any other base a WRMSR). RSI = CR3 (0: keep the current
 * one, as for a kernel thread) | KILN_SWITCH_* flags, RDX = FS base.
 */
static uint64_t svc_switch_task(struct trap_frame *f, uint64_t arg)
{
    uint64_t cr3 = arg & ~0xfffull;
    if (cr3)
        __asm__ volatile("mov %0, %%cr3" : : "r"(cr3) : "memory");
    if (f->rdx) {
        if (arg & KILN_SWITCH_NULL_SEL_FIRST)
            __asm__ volatile("mov %0, %%fs" : : "r"(0u));
        return svc_wrmsr(f, 0xC0000100u);
    }
    if (arg & KILN_SWITCH_USER_DS_FIRST)
        __asm__ volatile("mov %0, %%fs" : : "r"((uint32_t)(SEL_UDATA | 3)));
    __asm__ volatile("mov %0, %%fs" : : "r"(0u));
    return 0;
}

static uint64_t svc_user_if(struct trap_frame *f, uint64_t on)
{
    f->rflags = on ? f->rflags | 0x200 : f->rflags & ~0x200ull;
    return 0;
}

static uint64_t svc_idle(struct trap_frame *f, uint64_t arg)
{
    (void)f;
    (void)arg;
    __asm__ volatile("sti; hlt; cli" : : : "memory");
    return 0;
}

static uint64_t svc_invlpg(struct trap_frame *f, uint64_t va)
{
    (void)f;
    __asm__ volatile("invlpg (%0)" : : "r"(va) : "memory");
    return 0;
}

bool (*volatile kiln_page_fault_hook)(uint64_t cr2, uint64_t error);

/* Add a service: number in kiln_layout.h, function here. */
static const service_fn services[KILN_SVC_COUNT] = {
    [KILN_SVC_PING] = svc_ping,
    [KILN_SVC_TRIPLE_FAULT] = svc_triple_fault,
    [KILN_SVC_HALT] = svc_halt,
    [KILN_SVC_CPUID] = svc_cpuid,
    [KILN_SVC_RING0_CALL] = svc_ring0_call,
    [KILN_SVC_WRMSR] = svc_wrmsr,
    [KILN_SVC_RDMSR] = svc_rdmsr,
    [KILN_SVC_SWITCH_TASK] = svc_switch_task,
    [KILN_SVC_USER_IF] = svc_user_if,
    [KILN_SVC_IDLE] = svc_idle,
    [KILN_SVC_INVLPG] = svc_invlpg,
};

static bool is_service_call(const struct trap_frame *f)
{
    const uint8_t *insn = (const uint8_t *)f->rip;
    return f->vector == 6 && f->rax == KILN_SVC_MAGIC
        && insn[0] == 0x0f && insn[1] == 0x0b;
}

/* A user-mode #PF at KILN_SYSCALL_ENTRY_VA: a SYSCALL on a PVM host (see kiln_layout.h). */
static bool is_syscall_fault(const struct trap_frame *f)
{
    if (f->vector != 14 || f->rip != KILN_SYSCALL_ENTRY_VA || (f->cs & 3) != 3 || f->rax != KILN_SVC_MAGIC)
        return false;
    uint64_t cr2;
    __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
    return cr2 == KILN_SYSCALL_ENTRY_VA;
}

void trap_handler(struct trap_frame *f)
{
    if (is_syscall_fault(f)) {
        /* SYSCALL saved the return RIP in RCX and RFLAGS in R11; the fault's IRETQ goes back there. */
        uint64_t nr = f->rdi;
        f->rip = f->rcx;
        f->rflags = f->r11;
        f->rax = nr < KILN_SVC_COUNT && services[nr] ? services[nr](f, f->rsi) : ~0ull;
        return;
    }
    if (is_service_call(f)) {
        uint64_t nr = f->rdi;
        f->rax = nr < KILN_SVC_COUNT && services[nr] ? services[nr](f, f->rsi) : ~0ull;
        f->rip += 2;                        /* skip the ud2 */
        return;
    }

    if (f->vector == 14 && kiln_page_fault_hook) {
        uint64_t cr2;
        __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
        if (kiln_page_fault_hook(cr2, f->error))
            return;
    }

    printf("guest: exception %u error 0x%lx rip 0x%lx\n", (unsigned)f->vector, f->error, f->rip);
    printf("guest: cs 0x%lx rflags 0x%lx rsp 0x%lx\n", f->cs, f->rflags, f->rsp);
    if (f->vector == 14) {
        uint64_t cr2;
        __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
        printf("guest: cr2 0x%lx\n", cr2);
    }
    outl(KILN_EXIT_EXCEPTION, DEBUG_EXIT_PORT);
    halt_forever();
}
