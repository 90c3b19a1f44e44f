/*
 * test=tlb: after a ring-0 context switch to another address space, does ring 3 see that address space's pages?
 *
 * Linux's user processes map their TLS (and most else) at the same virtual addresses, each to its own physical
 * pages. Each CPU here cycles through `tasks` such "processes": every one has its own page tables (a copy of the
 * boot PML4 plus a private PDPT -> PD -> PT) mapping the same two pages at PRIVATE_VA, to physical pages of its own
 * that hold its marker. Per switch, ring 0 loads the task's CR3 and writes MSR_FS_BASE (service SWITCH_TASK, what
 * Linux does without PCID and FSGSBASE), then ring 3 reads %fs:-0x90 (glibc's locale pointer's slot) and a word of
 * the second page `checks` times. With `remap=1` the second page's PTE is pointed at the task's other physical
 * page before each switch into it (a new mapping at an old address, as after exec or a COW break), so a stale
 * translation shows as the previous generation's marker.
 *
 * `kthread=1` makes every other switch one to a kernel thread, which keeps the previous task's page tables (lazy
 * TLB) and gets a zero FS base through a null selector load (preceded by __USER_DS with `userds=1`), as in Linux.
 * `cow=1` adds, per switch, one anonymous page's life at a third address: unmapped (INVLPG), read (the #PF maps
 * a shared zero page read-only), written (the #PF maps a page of the task's own and INVLPGs), read back; a stale
 * translation reads 0 or the previous round's value (recorded with gen 0xc: "%fs" = the zero-page read, "data" =
 * the read-back).
 * `shared=1` gives all CPUs one pool of tasks (`tasks` > `cpus`), so tasks move between CPUs as processes do, and
 * with `remap=1` a mapping changes on one CPU while the task last ran on another.
 *
 * A wrong read is recorded and decoded (whose page it was); RDMSR(FS_BASE) right after says what the hypervisor
 * holds as the FS base. Exit 0 when every read was right, 1 otherwise.
 */
#include "tests.h"
#include "disturb.h"

#define MSR_FS_BASE     0xC0000100u
#define PRIVATE_VA      0x8000000000ul      /* PML4 slot 1: unused by the boot identity map */
#define FS_OFFSET       0x800ul             /* FS base = PRIVATE_VA + 0x800, read at -0x90 */
#define SPACE_AREA      0x1000000ul         /* 16 MiB: per (cpu, task) page tables and pages */
#define MAX_TASKS       8
#define PAGES_PER_TASK  9                   /* PML4, PDPT, PD, PT, TLS page, 2 data page candidates, 2 COW pages */
#define COW_VA          (PRIVATE_VA + 2 * PAGE)
#define PTE_P           0x1ul
#define PTE_W           0x2ul
#define PTE_U           0x4ul
#define RING0           __attribute__((target("general-regs-only"), noinline))
#define PAGE            0x1000ul
#define TABLE_FLAGS     0x7ul               /* present, writable, user */
#define MARKER_TAG      0xC3A5E00000000000ull
#define MAX_RECORDS     8

extern uint64_t pml4[512];                  /* boot/pagetables.S */

struct failure {
    uint64_t round, check, task, gen;
    uint64_t tls, data;                     /* what %fs:-0x90 and the data page returned */
    uint64_t msr_after;
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
static bool remap;
static bool kthread;                        /* every other switch is to a kernel thread (no CR3 load, FS base 0) */
static bool shared;                         /* one pool of tasks for all CPUs: tasks move between CPUs */
static volatile unsigned owner[MAX_TASKS];  /* shared: 0 = free, else the CPU running it + 1 */
static volatile unsigned shared_gen[MAX_TASKS];
static bool cow;                            /* cow=1: a zero-page read, then a copy-on-write fault, each switch */
static uint8_t zero_page[4096] __attribute__((aligned(4096)));
static uint64_t switch_flags;               /* KILN_SWITCH_USER_DS_FIRST (userds=1), _NULL_SEL_FIRST (setfs=1) */
static bool via_syscall;                    /* entry=syscall: SWITCH_TASK through SYSCALL, not ud2 */
static uint64_t deadline;

static uint64_t *task_page(unsigned cpu, unsigned task, unsigned n)
{
    return (uint64_t *)(SPACE_AREA + ((cpu * MAX_TASKS + task) * PAGES_PER_TASK + n) * PAGE);
}

/* cpu, task and (for the data page) generation in one word; the TLS page is generation 0xf. */
static uint64_t marker(unsigned cpu, unsigned task, unsigned gen)
{
    return MARKER_TAG | ((uint64_t)cpu << 16) | (task << 8) | gen;
}

static void space_init(unsigned cpu, unsigned task)
{
    uint64_t *pml, *pdpt = task_page(cpu, task, 1), *pd = task_page(cpu, task, 2), *pt = task_page(cpu, task, 3);
    pml = task_page(cpu, task, 0);
    memcpy(pml, pml4, PAGE);
    memset(pdpt, 0, PAGE);
    memset(pd, 0, PAGE);
    memset(pt, 0, PAGE);
    pml[PRIVATE_VA >> 39] = (uint64_t)pdpt | TABLE_FLAGS;
    pdpt[0] = (uint64_t)pd | TABLE_FLAGS;
    pd[0] = (uint64_t)pt | TABLE_FLAGS;
    pt[0] = (uint64_t)task_page(cpu, task, 4) | TABLE_FLAGS;
    pt[1] = (uint64_t)task_page(cpu, task, 5) | TABLE_FLAGS;
    for (unsigned n = 4; n < PAGES_PER_TASK; n++) {
        uint64_t *p = task_page(cpu, task, n);
        uint64_t m = marker(cpu, task, n == 4 ? 0xf : n - 5);
        for (unsigned i = 0; i < PAGE / 8; i++)
            p[i] = m;
    }
}

static inline uint64_t read_tls(void)
{
    uint64_t v;
    __asm__ volatile("movq %%fs:-0x90, %0" : "=r"(v) : : "memory");
    return v;
}

static inline uint64_t read_data(void) { return *(volatile uint64_t *)(PRIVATE_VA + PAGE + 8); }

static void record(struct cpu_result *r, uint64_t round, uint64_t check, unsigned task, unsigned gen, uint64_t tls,
                   uint64_t data)
{
    r->failures++;
    if (r->records >= MAX_RECORDS)
        return;
    struct failure *f = &r->record[r->records];
    *f = (struct failure){ round, check, task, gen, tls, data, kiln_service(KILN_SVC_RDMSR, MSR_FS_BASE) };
    r->records++;
}

/*
 * Ring 0, the #PF at COW_VA in the current address space: as Linux does for an anonymous page, a read of a missing
 * page maps the shared zero page read-only; a write to it then gets a page of the task's own (the other of its two
 * COW pages each time), mapped writable, and INVLPG drops the zero page's translation.
 */
RING0 static bool cow_fault(uint64_t cr2, uint64_t error)
{
    if (cr2 < COW_VA || cr2 >= COW_VA + PAGE)
        return false;
    uint64_t cr3;
    __asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
    uint64_t *pml = (uint64_t *)(cr3 & ~0xfffull);
    uint64_t *pdpt = (uint64_t *)(pml[PRIVATE_VA >> 39] & ~0xfffull);
    uint64_t *pd = (uint64_t *)(pdpt[0] & ~0xfffull);
    uint64_t *pt = (uint64_t *)(pd[0] & ~0xfffull);
    if (!(error & 1)) {                     /* not present: the zero page, read-only */
        pt[2] = (uint64_t)zero_page | PTE_P | PTE_U;
        return true;
    }
    if (!(error & 2))
        return false;
    pt[511] ^= 1;                           /* which COW page this time; the PT's last slot is otherwise unused */
    uint64_t page = (uint64_t)pt + (4 + pt[511]) * PAGE;   /* pages 7 and 8 of the task's block */
    pt[2] = page | PTE_P | PTE_W | PTE_U;
    __asm__ volatile("invlpg (%0)" : : "r"(COW_VA) : "memory");
    return true;
}

/* One anonymous-page life at COW_VA: unmap, read (zero page), write (COW), read back. Returns the wrong value or 0. */
static uint64_t cow_cycle(unsigned space, unsigned task, uint64_t value, uint64_t *zero_read)
{
    task_page(space, task, 3)[2] = 0;
    kiln_service(KILN_SVC_INVLPG, COW_VA);
    volatile uint64_t *p = (volatile uint64_t *)(COW_VA + 8);
    *zero_read = *p;                        /* #PF -> zero page */
    *p = value;                             /* #PF -> own page */
    uint64_t back = *p;
    return back == value && *zero_read == 0 ? 0 : back;
}

/* A ring-0 service, entered as chosen on the command line (a Linux task enters its kernel through SYSCALL). */
static uint64_t enter(uint64_t nr, uint64_t arg, uint64_t arg2)
{
    return via_syscall ? kiln_syscall2(nr, arg, arg2) : kiln_service2(nr, arg, arg2);
}

/* The next task for this CPU: its own in turn, or (shared=1) the next one no other CPU is running. */
static unsigned pick_task(unsigned cpu, uint64_t round, unsigned last)
{
    if (!shared)
        return (unsigned)(round % tasks);
    for (unsigned i = 1;; i++) {
        unsigned t = (last + i) % tasks, free = 0;
        if (__atomic_compare_exchange_n(&owner[t], &free, cpu + 1, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
            return t;
        if (stop)
            return tasks;   /* none: the run is over */
    }
}

static void worker(unsigned cpu)
{
    struct cpu_result *r = &results[cpu];
    unsigned space = shared ? 0 : cpu, last = 0;
    unsigned gen[MAX_TASKS] = { 0 };
    volatile unsigned *task_gen = shared ? shared_gen : gen;
    __atomic_fetch_add(&started, 1, __ATOMIC_SEQ_CST);
    if (via_syscall)
        kiln_syscall_enable();              /* MSR_LSTAR is per CPU */
    disturb_start(&disturb);
    for (uint64_t round = 0; !stop; round++) {
        disturb_switch(&disturb, round);
        if (cpu == 0 && (int64_t)(rdtsc() - deadline) >= 0)
            stop = true;
        r->switches++;
        if (kthread && round % 2) {
            /* A kernel thread: keeps the previous page tables (lazy TLB), FS base 0, no user code. */
            enter(KILN_SVC_SWITCH_TASK, switch_flags, 0);
            continue;
        }
        unsigned task = pick_task(cpu, round, last);
        if (task == tasks)
            break;
        last = task;
        if (remap) {
            /* The task runs nowhere else: change its mapping, the CR3 load below must not see the old one. */
            task_gen[task] ^= 1;
            task_page(space, task, 3)[1] = (uint64_t)task_page(space, task, 5 + task_gen[task]) | TABLE_FLAGS;
            __atomic_thread_fence(__ATOMIC_SEQ_CST);
        }
        enter(KILN_SVC_SWITCH_TASK, (uint64_t)task_page(space, task, 0) | (switch_flags & KILN_SWITCH_NULL_SEL_FIRST),
              PRIVATE_VA + FS_OFFSET);
        uint64_t want_tls = marker(space, task, 0xf), want_data = marker(space, task, task_gen[task]);
        for (unsigned k = 0; k < checks; k++) {
            uint64_t tls = read_tls(), data = read_data();
            if (tls != want_tls || data != want_data)
                record(r, round, k, task, task_gen[task], tls, data);
            disturb_check(&disturb, k);
        }
        r->checks += checks;
        if (cow) {
            uint64_t zero_read, value = marker(space, task, 0xc) ^ (round << 20);
            uint64_t bad = cow_cycle(space, task, value, &zero_read);
            if (bad || zero_read)
                record(r, round, checks, task, 0xc, zero_read, bad);
            r->checks++;
        }
        if (shared)
            __atomic_store_n(&owner[task], 0, __ATOMIC_SEQ_CST);
    }
    /* Back to the boot page tables, which every CPU shares. */
    kiln_service2(KILN_SVC_SWITCH_TASK, (uint64_t)pml4, 0);
    disturb_stop(&disturb);
    r->done = true;
}

static void ap_worker(unsigned slot) { worker(slot); }

static void describe(uint64_t v, char *out, size_t size)
{
    if ((v & 0xFFFFF00000000000ull) == MARKER_TAG) {
        unsigned gen = v & 0xff;
        if (gen == 0xf)
            snprintf(out, size, "cpu %lu task %lu's TLS page", (v >> 16) & 0xff, (v >> 8) & 0xff);
        else
            snprintf(out, size, "cpu %lu task %lu's data page gen %u", (v >> 16) & 0xff, (v >> 8) & 0xff, gen);
    } else {
        snprintf(out, size, "not a marker");
    }
}

int test_tlb(const char *cmdline)
{
    unsigned cpus = (unsigned)arg_u64(cmdline, "cpus", 2);
    uint64_t seconds = arg_u64(cmdline, "seconds", 5);
    tasks = (unsigned)arg_u64(cmdline, "tasks", 4);
    checks = (unsigned)arg_u64(cmdline, "checks", 100);
    remap = arg_u64(cmdline, "remap", 0) != 0;
    kthread = arg_u64(cmdline, "kthread", 0) != 0;
    shared = arg_u64(cmdline, "shared", 0) != 0;
    cow = arg_u64(cmdline, "cow", 0) != 0;
    if (cow)
        kiln_page_fault_hook = cow_fault;
    switch_flags = (arg_u64(cmdline, "userds", 0) ? KILN_SWITCH_USER_DS_FIRST : 0)
                 | (arg_u64(cmdline, "setfs", 0) ? KILN_SWITCH_NULL_SEL_FIRST : 0);
    const char *entry = arg_str(cmdline, "entry");
    via_syscall = entry && strcmp(entry, "syscall") == 0;
    if (cpus < 1 || cpus > KILN_MAX_CPUS || tasks < 2 || tasks > MAX_TASKS || (shared && tasks <= cpus) || checks < 1 || !disturb_parse(cmdline, &disturb)) {
        printf("tlb: need 1 <= cpus <= %u, 2 <= tasks <= %u (more than cpus with shared=1), checks >= 1\n", KILN_MAX_CPUS, MAX_TASKS);
        return 1;
    }
    for (unsigned c = 0; c < cpus; c++)
        for (unsigned t = 0; t < tasks; t++)
            space_init(c, t);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);

    uint64_t hz = tsc_hz();
    printf("tlb: cpus %u tasks %u checks %u io_every %u timer_us %u idle_every %u remap %u cow %u shared %u kthread %u flags %u entry %s seconds %lu\n",
           cpus, tasks, checks, disturb.io_every, disturb.timer_us, disturb.idle_every,
           remap, cow, shared, kthread, (unsigned)switch_flags, via_syscall ? "syscall" : "ud2", seconds);
    if (cpus > 1)
        smp_boot_aps(ap_worker);
    deadline = rdtsc() + seconds * hz;
    worker(0);
    uint64_t wait_until = rdtsc() + hz;
    for (unsigned c = 1; c < cpus; c++)
        while (!results[c].done && (int64_t)(rdtsc() - wait_until) < 0)
            cpu_relax();

    uint64_t total_checks = 0, total_failures = 0;
    unsigned ran = __atomic_load_n(&started, __ATOMIC_SEQ_CST);
    for (unsigned c = 0; c < cpus; c++) {
        struct cpu_result *cr = &results[c];
        printf("tlb cpu %u: switches %lu checks %lu failures %lu%s\n", c, cr->switches, cr->checks, cr->failures,
               c && !cr->done ? " (did not stop)" : "");
        total_checks += cr->checks;
        total_failures += cr->failures;
        for (unsigned i = 0; i < cr->records; i++) {
            struct failure *f = &cr->record[i];
            char tls[48], data[48];
            describe(f->tls, tls, sizeof(tls));
            describe(f->data, data, sizeof(data));
            printf("  TLB MISMATCH cpu %u round %lu check %lu task %lu gen %lu: %%fs:-0x90 0x%lx (%s), "
                   "data 0x%lx (%s); rdmsr FS_BASE after 0x%lx\n",
                   c, f->round, f->check, f->task, f->gen, f->tls, tls, f->data, data, f->msr_after);
        }
    }
    uint64_t ppm = total_checks ? total_failures * 1000000 / total_checks : 0;
    printf("tlb: %u cpus ran, checks %lu failures %lu (%lu per million), timer ticks %lu\n", ran, total_checks,
           total_failures, ppm, timer_ticks);
    return ran == cpus && total_failures == 0 ? 0 : 1;
}
