/*
 * test=ptrecycle: address spaces built from recycled pages, as a Linux guest's exec builds new page tables out of
 * pages that were data or other page tables a moment ago.
 *
 * Each CPU owns a pool of `pool` pages. Every round it builds a fresh address space from the next five pages of its
 * pool (PML4 copied from the boot one, PDPT, PD, PT, one data page holding the round's marker), so over the rounds
 * every page serves in every role: a page table one round, data the next, a table at another level later. A
 * hypervisor that shadows the guest's page tables must notice each change of role. Ring 0 loads the new CR3 and the
 * FS base (service SWITCH_TASK), then ring 3 reads %fs:-0x90 and the data page's second word `checks` times.
 *
 * Options: `cpus` (2), `seconds` (5), `pool` (64, at least 10), `checks` (100), `entry=syscall`, and the
 * disturbances of disturb.h (`timer_us`, `idle_every`, `io_every`). Exit 0 when every read was right, 1 otherwise.
 */
#include "tests.h"
#include "disturb.h"

#define POOL_AREA       0x2000000ul         /* 32 MiB */
#define MAX_POOL        256
#define PAGE            0x1000ul
#define PRIVATE_VA      0x8000000000ul
#define FS_OFFSET       0x800ul
#define TABLE_FLAGS     0x7ul
#define MARKER_TAG      0x9E5C000000000000ull
#define MAX_RECORDS     8

extern uint64_t pml4[512];                  /* boot/pagetables.S */

struct failure {
    uint64_t round, check, tls, data, want;
};

struct cpu_result {
    volatile uint64_t rounds, checks, failures;
    volatile unsigned records;
    struct failure record[MAX_RECORDS];
    volatile bool done;
};

static struct cpu_result results[KILN_MAX_CPUS];
static volatile bool stop;
static volatile unsigned started;
static unsigned pool, checks;
static bool via_syscall;
static struct disturb disturb;
static uint64_t deadline;

static uint64_t *pool_page(unsigned cpu, uint64_t n)
{
    return (uint64_t *)(POOL_AREA + ((uint64_t)cpu * MAX_POOL + n % pool) * PAGE);
}

static uint64_t marker(unsigned cpu, uint64_t round) { return MARKER_TAG | ((uint64_t)cpu << 40) | round; }

/* A fresh address space from pool pages 5*round .. 5*round+4; returns its PML4. */
static uint64_t *build_space(unsigned cpu, uint64_t round)
{
    uint64_t first = round * 5;
    uint64_t *pml = pool_page(cpu, first), *pdpt = pool_page(cpu, first + 1), *pd = pool_page(cpu, first + 2),
             *pt = pool_page(cpu, first + 3), *data = pool_page(cpu, first + 4);
    uint64_t m = marker(cpu, round);
    for (unsigned i = 0; i < PAGE / 8; i++)
        data[i] = m;
    memset(pt, 0, PAGE);
    pt[0] = (uint64_t)data | TABLE_FLAGS;
    memset(pd, 0, PAGE);
    pd[0] = (uint64_t)pt | TABLE_FLAGS;
    memset(pdpt, 0, PAGE);
    pdpt[0] = (uint64_t)pd | TABLE_FLAGS;
    memcpy(pml, pml4, PAGE);
    pml[PRIVATE_VA >> 39] = (uint64_t)pdpt | TABLE_FLAGS;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return pml;
}

static inline uint64_t read_tls(void)
{
    uint64_t v;
    __asm__ volatile("movq %%fs:-0x90, %0" : "=r"(v) : : "memory");
    return v;
}

static void worker(unsigned cpu)
{
    struct cpu_result *r = &results[cpu];
    __atomic_fetch_add(&started, 1, __ATOMIC_SEQ_CST);
    if (via_syscall)
        kiln_syscall_enable();
    disturb_start(&disturb);
    for (uint64_t round = 0; !stop; round++) {
        disturb_switch(&disturb, round);
        if (cpu == 0 && (int64_t)(rdtsc() - deadline) >= 0)
            stop = true;
        uint64_t cr3 = (uint64_t)build_space(cpu, round), want = marker(cpu, round);
        if (via_syscall)
            kiln_syscall2(KILN_SVC_SWITCH_TASK, cr3, PRIVATE_VA + FS_OFFSET);
        else
            kiln_service2(KILN_SVC_SWITCH_TASK, cr3, PRIVATE_VA + FS_OFFSET);
        for (unsigned k = 0; k < checks; k++) {
            uint64_t tls = read_tls(), data = *(volatile uint64_t *)(PRIVATE_VA + 8);
            if ((tls != want || data != want) && r->failures++ < MAX_RECORDS) {
                r->record[r->records] = (struct failure){ round, k, tls, data, want };
                r->records++;
            }
            disturb_check(&disturb, k);
        }
        r->checks += checks;
        r->rounds++;
    }
    /* Leave the pool's pages unused: back to the boot page tables. */
    kiln_service2(KILN_SVC_SWITCH_TASK, (uint64_t)pml4, 0);
    disturb_stop(&disturb);
    r->done = true;
}

static void ap_worker(unsigned slot) { worker(slot); }

int test_ptrecycle(const char *cmdline)
{
    unsigned cpus = (unsigned)arg_u64(cmdline, "cpus", 2);
    uint64_t seconds = arg_u64(cmdline, "seconds", 5);
    pool = (unsigned)arg_u64(cmdline, "pool", 64);
    checks = (unsigned)arg_u64(cmdline, "checks", 100);
    const char *entry = arg_str(cmdline, "entry");
    via_syscall = entry && strcmp(entry, "syscall") == 0;
    if (cpus < 1 || cpus > KILN_MAX_CPUS || pool < 10 || pool > MAX_POOL || checks < 1
        || !disturb_parse(cmdline, &disturb)) {
        printf("ptrecycle: need 1 <= cpus <= %u, 10 <= pool <= %u, checks >= 1\n", KILN_MAX_CPUS, MAX_POOL);
        return 1;
    }
    uint64_t hz = tsc_hz();
    printf("ptrecycle: cpus %u pool %u checks %u entry %s timer_us %u idle_every %u io_every %u seconds %lu\n", cpus,
           pool, checks, via_syscall ? "syscall" : "ud2", disturb.timer_us, disturb.idle_every, disturb.io_every,
           seconds);
    if (cpus > 1)
        smp_boot_aps(ap_worker);
    deadline = rdtsc() + seconds * hz;
    worker(0);
    uint64_t wait_until = rdtsc() + hz;
    for (unsigned c = 1; c < cpus; c++)
        while (!results[c].done && (int64_t)(rdtsc() - wait_until) < 0)
            cpu_relax();

    uint64_t total_checks = 0, total_failures = 0;
    for (unsigned c = 0; c < cpus; c++) {
        struct cpu_result *cr = &results[c];
        printf("ptrecycle cpu %u: rounds %lu checks %lu failures %lu%s\n", c, cr->rounds, cr->checks, cr->failures,
               c && !cr->done ? " (did not stop)" : "");
        total_checks += cr->checks;
        total_failures += cr->failures;
        for (unsigned i = 0; i < cr->records; i++) {
            struct failure *f = &cr->record[i];
            printf("  PTRECYCLE MISMATCH cpu %u round %lu check %lu: %%fs:-0x90 0x%lx data 0x%lx want 0x%lx\n", c,
                   f->round, f->check, f->tls, f->data, f->want);
        }
    }
    unsigned ran = __atomic_load_n(&started, __ATOMIC_SEQ_CST);
    printf("ptrecycle: %u cpus ran, checks %lu failures %lu (%lu per million), timer ticks %lu\n", ran, total_checks,
           total_failures, total_checks ? total_failures * 1000000 / total_checks : 0, timer_ticks);
    return ran == cpus && total_failures == 0 ? 0 : 1;
}
