/*
 * test=pvflush: Linux's TLB shootdown on KVM, between two CPUs, checked for stale translations.
 *
 * CPU 1 (the reader) runs at ring 3 in an address space of its own making, reading one word at SHARED_VA in a
 * loop, interrupts on. CPU 0 (the writer) keeps moving that mapping between two physical pages: it fills the new
 * page, rewrites the PTE (ring 3 writes to the page table, as Linux's are plain memory writes), shoots down the
 * reader's TLB the way a KVM guest's Linux does (kvm_flush_tlb_multi): if the reader's steal-time record says it
 * is preempted, it only sets KVM_VCPU_FLUSH_TLB there and the host must flush before the reader runs again;
 * otherwise an IPI, whose handler reloads CR3, and a wait for it. Then the writer fills the old page with POISON.
 * A reader that reads POISON used a translation the shootdown should have removed.
 *
 * `pv=0` always sends the IPI (the control). `seconds` (5), `delay_us` between moves (0). Preemption, and so the
 * paravirtual path, is common when both vCPU threads share a host CPU (`taskset -c 0 kiln run ...`).
 * Exit 0 without stale reads, 1 with.
 */
#include "tests.h"

#define MSR_KVM_STEAL_TIME  0x4b564d03u
#define KVM_MSR_ENABLED     1
#define KVM_VCPU_PREEMPTED  1
#define KVM_VCPU_FLUSH_TLB  2
#define SPACE_AREA          0x1800000ul     /* 24 MiB: PML4, PDPT, PD, PT, then the two data pages */
#define PAGE                0x1000ul
#define SHARED_VA           0x8000000000ul
#define TABLE_FLAGS         0x7ul
#define POISON              0xdeaddeaddeaddeadull
#define GOOD                0x600d000000000000ull

/* struct kvm_steal_time (64 bytes); `preempted` is at offset 16. */
struct steal_time {
    uint64_t steal;
    uint32_t version, flags;
    uint8_t preempted;
    uint8_t pad[3];
    uint32_t pad2[11];
} __attribute__((aligned(64)));

extern uint64_t pml4[512];                  /* boot/pagetables.S */
extern volatile uint64_t flush_acks;        /* boot/isr.S */

static struct steal_time steal[KILN_MAX_CPUS];
static volatile uint32_t reader_apic;
static volatile bool reader_ready, reader_done, stop;
static volatile uint64_t reads, stale_reads, stale_first_read;

static uint64_t *space_page(unsigned n) { return (uint64_t *)(SPACE_AREA + n * PAGE); }

static void steal_time_register(unsigned cpu)
{
    kiln_service2(KILN_SVC_WRMSR, MSR_KVM_STEAL_TIME, (uint64_t)&steal[cpu] | KVM_MSR_ENABLED);
}

static void reader(unsigned slot)
{
    if (slot != 1)
        return;                             /* only one reader */
    steal_time_register(1);
    reader_apic = cpu_apic_id();
    mmio_write32(LAPIC_BASE + 0xF0, mmio_read32(LAPIC_BASE + 0xF0) | 0x100);   /* software-enable: take IPIs */
    kiln_service2(KILN_SVC_SWITCH_TASK, (uint64_t)space_page(0), 0);
    kiln_service(KILN_SVC_USER_IF, 1);      /* the shootdown IPI must reach ring 3 */
    reader_ready = true;
    volatile uint64_t *word = (volatile uint64_t *)(SHARED_VA + 8);
    uint64_t n = 0;
    while (!stop) {
        uint64_t v = *word;
        n++;
        if (v == POISON && stale_reads++ == 0)
            stale_first_read = n;
    }
    reads = n;
    kiln_service(KILN_SVC_USER_IF, 0);
    kiln_service2(KILN_SVC_SWITCH_TASK, (uint64_t)pml4, 0);
    reader_done = true;
}

static void send_flush_ipi(uint32_t apic)
{
    mmio_write32(LAPIC_BASE + 0x310, apic << 24);
    mmio_write32(LAPIC_BASE + 0x300, (1u << 14) | KILN_FLUSH_VECTOR);   /* fixed, physical, assert */
}

int test_pvflush(const char *cmdline)
{
    uint64_t seconds = arg_u64(cmdline, "seconds", 5);
    uint64_t delay = arg_u64(cmdline, "delay_us", 0);
    bool pv = arg_u64(cmdline, "pv", 1) != 0;

    uint64_t *pml = space_page(0), *pdpt = space_page(1), *pd = space_page(2), *pt = space_page(3);
    memcpy(pml, pml4, PAGE);
    memset(pdpt, 0, PAGE);
    memset(pd, 0, PAGE);
    memset(pt, 0, PAGE);
    pml[SHARED_VA >> 39] = (uint64_t)pdpt | TABLE_FLAGS;
    pdpt[0] = (uint64_t)pd | TABLE_FLAGS;
    pd[0] = (uint64_t)pt | TABLE_FLAGS;
    space_page(4)[1] = GOOD;
    pt[0] = (uint64_t)space_page(4) | TABLE_FLAGS;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);

    uint64_t hz = tsc_hz();
    printf("pvflush: pv %u seconds %lu delay_us %lu\n", pv, seconds, delay);
    steal_time_register(0);
    smp_boot_aps(reader);
    uint64_t wait_until = rdtsc() + 2 * hz;
    while (!reader_ready && (int64_t)(rdtsc() - wait_until) < 0)
        cpu_relax();
    if (!reader_ready) {
        puts("pvflush: the reader CPU did not start");
        return 1;
    }

    uint64_t moves = 0, pv_flushes = 0, ipi_flushes = 0, ipi_timeouts = 0;
    unsigned gen = 0;
    uint64_t deadline = rdtsc() + seconds * hz;
    while ((int64_t)(rdtsc() - deadline) < 0) {
        uint64_t *old_page = space_page(4 + gen);
        gen ^= 1;
        uint64_t *new_page = space_page(4 + gen);
        new_page[1] = GOOD | moves;
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        pt[0] = (uint64_t)new_page | TABLE_FLAGS;
        __atomic_thread_fence(__ATOMIC_SEQ_CST);

        /* kvm_flush_tlb_multi(): a preempted vCPU is flushed by the host before it runs again. */
        uint8_t state = __atomic_load_n(&steal[1].preempted, __ATOMIC_SEQ_CST);
        if (pv && (state & KVM_VCPU_PREEMPTED)
            && __atomic_compare_exchange_n(&steal[1].preempted, &state, state | KVM_VCPU_FLUSH_TLB, false,
                                           __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
            pv_flushes++;
        } else {
            uint64_t acks = flush_acks, until = rdtsc() + hz;
            send_flush_ipi(reader_apic);
            while (flush_acks == acks && (int64_t)(rdtsc() - until) < 0)
                cpu_relax();
            if (flush_acks == acks)
                ipi_timeouts++;
            ipi_flushes++;
        }
        old_page[1] = POISON;
        moves++;
        if (delay)
            delay_us(delay);
    }
    stop = true;
    wait_until = rdtsc() + 2 * hz;
    while (!reader_done && (int64_t)(rdtsc() - wait_until) < 0)
        cpu_relax();

    printf("pvflush: moves %lu, flushes paravirtual %lu ipi %lu (timeouts %lu), reader reads %lu, stale reads %lu",
           moves, pv_flushes, ipi_flushes, ipi_timeouts, reads, stale_reads);
    if (stale_reads)
        printf(" (first at read %lu)", stale_first_read);
    printf("%s\n", reader_done ? "" : "; the reader did not stop");
    /* A host that keeps no steal-time record never marks a vCPU preempted: the paravirtual path cannot run. */
    printf("pvflush: reader's steal time: version %u steal %lu ns preempted %u\n", steal[1].version, steal[1].steal,
           steal[1].preempted);
    return stale_reads == 0 && ipi_timeouts == 0 && reader_done ? 0 : 1;
}
