/*
 * test=fsbase: does every ring-3 %fs access use the FS base ring 0 last set on this CPU?
 *
 * The pattern of a Linux guest's context switch, without Linux: each CPU cycles through `tasks` "tasks", each with
 * its own TLS block. Per switch, ring 0 writes MSR_FS_BASE (service SWITCH_TASK: an emulated WRMSR on a PVM host,
 * then IRETQ to ring 3), and ring 3 then reads %fs:0x100 (the task's marker) and %fs:0 (the block's self pointer, as
 * glibc's TCB has) `checks` times, comparing both with the task's values. Every CPU does this at once; `io_every`
 * adds a port write (an exit to the VMM) every N checks.
 *
 * A wrong read is recorded with what it saw. The self pointer names the base the CPU really used when it points
 * into the TLS area (whose task it was: this CPU's previous one, or another CPU's); then RDMSR(FS_BASE) at ring 0
 * says what the hypervisor believes the base is, and one more ring-3 read shows whether the bad base survived
 * that exit.
 *
 * `kthread=1` makes every other switch one to a kernel thread: it loads a null FS selector (base 0) instead of
 * writing the base, preceded by __USER_DS with `userds=1`, as Linux does for such tasks; it runs no user code.
 * `setfs=1` loads the null selector before writing a non-zero base, as Linux's arch_prctl(ARCH_SET_FS) does.
 *
 * Written as a reproducer for the 2-vCPU Linux failure on PVM hosts (guestkit/README.md). Exit 0 when every read
 * was right, 1 otherwise.
 */
#include "tests.h"
#include "disturb.h"

#define MSR_FS_BASE     0xC0000100u
#define TLS_AREA        0x800000ul          /* 8 MiB: above the image and stacks, identity-mapped, user pages */
#define MAX_TASKS       8
#define TLS_BLOCK       0x1000ul            /* one page per (CPU, task) */
#define TLS_BASE_OFFSET 0x800ul             /* the base sits mid-page, so negative offsets would work too */
#define MARKER_OFFSET   0x100
#define MARKER_TAG      0xF5BA5E0000000000ull
#define MAX_RECORDS     8

struct failure {
    uint64_t round, check, task;
    uint64_t marker, self;                  /* what %fs:0x100 and %fs:0 returned */
    uint64_t msr_after;                     /* RDMSR(FS_BASE) at ring 0 right after */
    uint64_t self_again;                    /* %fs:0 once more, after that exit */
};

struct cpu_result {
    volatile uint64_t switches, checks, failures;
    volatile unsigned records;
    struct failure record[MAX_RECORDS];
    volatile bool done;
};

static struct cpu_result results[KILN_MAX_CPUS];
static volatile bool stop;
static volatile unsigned started;
static unsigned tasks, checks;
static struct disturb disturb;
static bool kthread;                        /* every other switch is to a kernel thread (FS base 0) */
static uint64_t switch_flags;               /* KILN_SWITCH_USER_DS_FIRST (userds=1), _NULL_SEL_FIRST (setfs=1) */
static bool via_syscall;                    /* entry=syscall: SWITCH_TASK through SYSCALL, not ud2 */
static uint64_t deadline;                   /* TSC; the BSP (cpu 0) ends the run */

static uint64_t task_base(unsigned cpu, unsigned task)
{
    return TLS_AREA + (cpu * MAX_TASKS + task) * TLS_BLOCK + TLS_BASE_OFFSET;
}

static uint64_t task_marker(unsigned cpu, unsigned task) { return MARKER_TAG | (cpu << 8) | task; }

static void tls_init(unsigned cpu)
{
    for (unsigned t = 0; t < MAX_TASKS; t++) {
        uint64_t base = task_base(cpu, t);
        *(volatile uint64_t *)base = base;
        *(volatile uint64_t *)(base + MARKER_OFFSET) = task_marker(cpu, t);
    }
}

static inline uint64_t fs_read_self(void)
{
    uint64_t v;
    __asm__ volatile("movq %%fs:0, %0" : "=r"(v) : : "memory");
    return v;
}

static inline uint64_t fs_read_marker(void)
{
    uint64_t v;
    __asm__ volatile("movq %%fs:0x100, %0" : "=r"(v) : : "memory");
    return v;
}

static void record(struct cpu_result *r, uint64_t round, uint64_t check, unsigned task, uint64_t marker,
                   uint64_t self)
{
    r->failures++;
    if (r->records >= MAX_RECORDS)
        return;
    struct failure *f = &r->record[r->records];
    f->round = round;
    f->check = check;
    f->task = task;
    f->marker = marker;
    f->self = self;
    f->msr_after = kiln_service(KILN_SVC_RDMSR, MSR_FS_BASE);
    f->self_again = fs_read_self();
    r->records++;
}

/* A ring-0 service, entered as chosen on the command line (a Linux task enters its kernel through SYSCALL). */
static uint64_t enter(uint64_t nr, uint64_t arg, uint64_t arg2)
{
    return via_syscall ? kiln_syscall2(nr, arg, arg2) : kiln_service2(nr, arg, arg2);
}

static void worker(unsigned cpu)
{
    struct cpu_result *r = &results[cpu];
    __atomic_fetch_add(&started, 1, __ATOMIC_SEQ_CST);
    if (via_syscall)
        kiln_syscall_enable();              /* MSR_LSTAR is per CPU */
    disturb_start(&disturb);
    for (uint64_t round = 0; !stop; round++) {
        disturb_switch(&disturb, round);
        if (cpu == 0 && (int64_t)(rdtsc() - deadline) >= 0)
            stop = true;
        unsigned task = (unsigned)((kthread ? round / 2 : round) % tasks);
        uint64_t base = task_base(cpu, task), marker = task_marker(cpu, task);
        r->switches++;
        if (kthread && round % 2) {
            /* A kernel thread: zero FS base (null selector load), no user code to check. */
            enter(KILN_SVC_SWITCH_TASK, switch_flags, 0);
            continue;
        }
        enter(KILN_SVC_SWITCH_TASK, switch_flags & KILN_SWITCH_NULL_SEL_FIRST, base);
        for (unsigned k = 0; k < checks; k++) {
            uint64_t m = fs_read_marker(), s = fs_read_self();
            if (m != marker || s != base)
                record(r, round, k, task, m, s);
            disturb_check(&disturb, k);
        }
        r->checks += checks;
    }
    disturb_stop(&disturb);
    r->done = true;
}

static void ap_worker(unsigned slot) { worker(slot); }

/* Which (cpu, task) a base belongs to, for the report. */
static void describe_base(uint64_t base, char *out, size_t size)
{
    uint64_t area_end = TLS_AREA + KILN_MAX_CPUS * MAX_TASKS * TLS_BLOCK;
    if (base >= TLS_AREA && base < area_end && (base - TLS_AREA) % TLS_BLOCK == TLS_BASE_OFFSET) {
        uint64_t i = (base - TLS_AREA) / TLS_BLOCK;
        snprintf(out, size, "cpu %lu task %lu's base", i / MAX_TASKS, i % MAX_TASKS);
    } else {
        snprintf(out, size, "not a task's base");
    }
}

int test_fsbase(const char *cmdline)
{
    unsigned cpus = (unsigned)arg_u64(cmdline, "cpus", 2);
    uint64_t seconds = arg_u64(cmdline, "seconds", 5);
    tasks = (unsigned)arg_u64(cmdline, "tasks", 4);
    checks = (unsigned)arg_u64(cmdline, "checks", 100);
    kthread = arg_u64(cmdline, "kthread", 0) != 0;
    switch_flags = (arg_u64(cmdline, "userds", 0) ? KILN_SWITCH_USER_DS_FIRST : 0)
                 | (arg_u64(cmdline, "setfs", 0) ? KILN_SWITCH_NULL_SEL_FIRST : 0);
    const char *entry = arg_str(cmdline, "entry");
    via_syscall = entry && strcmp(entry, "syscall") == 0;
    if (cpus < 1 || cpus > KILN_MAX_CPUS || tasks < 1 || tasks > MAX_TASKS || checks < 1 || !disturb_parse(cmdline, &disturb)) {
        printf("fsbase: need 1 <= cpus <= %u, 1 <= tasks <= %u, checks >= 1\n", KILN_MAX_CPUS, MAX_TASKS);
        return 1;
    }
    for (unsigned c = 0; c < cpus; c++)
        tls_init(c);

    uint64_t hz = tsc_hz();
    printf("fsbase: cpus %u tasks %u checks %u io_every %u timer_us %u idle_every %u kthread %u flags %u entry %s seconds %lu\n",
           cpus, tasks, checks, disturb.io_every, disturb.timer_us, disturb.idle_every, kthread,
           (unsigned)switch_flags, via_syscall ? "syscall" : "ud2", seconds);
    if (cpus > 1)
        smp_boot_aps(ap_worker);

    /* The BSP works too, and keeps time (rdtsc is native and cheap). */
    deadline = rdtsc() + seconds * hz;
    worker(0);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    uint64_t wait_until = rdtsc() + hz;
    for (unsigned c = 1; c < cpus; c++)
        while (!results[c].done && (int64_t)(rdtsc() - wait_until) < 0)
            cpu_relax();

    uint64_t total_checks = 0, total_failures = 0;
    unsigned ran = __atomic_load_n(&started, __ATOMIC_SEQ_CST);
    for (unsigned c = 0; c < cpus; c++) {
        struct cpu_result *cr = &results[c];
        printf("fsbase cpu %u: switches %lu checks %lu failures %lu%s\n", c, cr->switches, cr->checks,
               cr->failures, c && !cr->done ? " (did not stop)" : "");
        total_checks += cr->checks;
        total_failures += cr->failures;
        for (unsigned i = 0; i < cr->records; i++) {
            struct failure *f = &cr->record[i];
            char used[48], kvm[48];
            describe_base(f->self, used, sizeof(used));
            describe_base(f->msr_after, kvm, sizeof(kvm));
            printf("  FSBASE MISMATCH cpu %u round %lu check %lu task %lu: marker 0x%lx self 0x%lx (%s), "
                   "want 0x%lx; rdmsr after 0x%lx (%s); self after exit 0x%lx\n",
                   c, f->round, f->check, f->task, f->marker, f->self, used, task_base(c, (unsigned)f->task),
                   f->msr_after, kvm, f->self_again);
        }
    }
    uint64_t ppm = total_checks ? total_failures * 1000000 / total_checks : 0;
    printf("fsbase: %u cpus ran, checks %lu failures %lu (%lu per million), timer ticks %lu\n", ran, total_checks,
           total_failures, ppm, timer_ticks);
    return ran == cpus && total_failures == 0 ? 0 : 1;
}
