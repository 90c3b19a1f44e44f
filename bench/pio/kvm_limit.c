/*
 * The exit-path limit for bench/pio: the smallest possible VMM. A ring-0 stub IRETQs into 64-bit ring 3 with
 * IOPL=3 (PVM hosts run ring 3 natively, and only enter it through the guest's own IRET), which runs
 *     mov ecx, N; mov dx, 0x3f8; 1: out dx, al; dec ecx; jnz 1b; mov dx, 0xf4; out dx, eax
 * and counts KVM_RUN round trips until the write to 0xf4. Nothing is printed per exit.
 * Usage: kvm_limit [N]   -> prints "exits N seconds S exits_per_second R"
 */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>

#define MEM_SIZE (2u << 20)
#define CHECK(x) do { if ((x) < 0) { perror(#x); exit(1); } } while (0)

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct kvm_segment seg(uint16_t sel, uint8_t type, uint8_t dpl, uint8_t l, uint8_t db, uint8_t s)
{
    struct kvm_segment g = { .base = 0, .limit = 0xffffffff, .selector = sel, .type = type, .present = 1,
                             .dpl = dpl, .db = db, .s = s, .l = l, .g = 1 };
    return g;
}

int main(int argc, char **argv)
{
    uint32_t n = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 0) : 1000000;
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    CHECK(kvm);
    int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    CHECK(vm);
    uint8_t *mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    struct kvm_userspace_memory_region region = { .slot = 0, .guest_phys_addr = 0, .memory_size = MEM_SIZE,
                                                   .userspace_addr = (uintptr_t)mem };
    CHECK(ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region));

    /* Identity map of the first 2 MiB, user-accessible: PML4 0x1000 -> PDPT 0x2000 -> PD 0x3000 (one 2 MiB page). */
    uint64_t *pml4 = (uint64_t *)(mem + 0x1000), *pdpt = (uint64_t *)(mem + 0x2000), *pd = (uint64_t *)(mem + 0x3000);
    pml4[0] = 0x2000 | 7;
    pdpt[0] = 0x3000 | 7;
    pd[0] = 0x87;

    /* GDT at 0x500: null, kernel code64 (0x08), kernel data (0x10), user code64 (0x18), user data (0x20), and a
     * 64-bit TSS (0x28) at 0x20000 with RSP0 and an all-zero I/O permission bitmap: a PVM host drops the guest's
     * IOPL in ring 3 and checks port I/O against that bitmap instead. */
    uint64_t gdt[] = { 0, 0x00af9b000000ffffull, 0x00cf93000000ffffull, 0x00affb000000ffffull, 0x00cff3000000ffffull,
                       0x0000890200002068ull, 0 };
    memcpy(mem + 0x500, gdt, sizeof gdt);
    uint64_t rsp0 = 0x9000;
    uint16_t iomap_base = 0x68;
    memcpy(mem + 0x20000 + 4, &rsp0, 8);
    memcpy(mem + 0x20000 + 0x66, &iomap_base, 2);
    mem[0x20000 + 0x68 + 0x2000] = 0xff; /* the bitmap's terminating byte */
    uint8_t stub[] = { 0x48, 0xc7, 0xc4, 0x00, 0x80, 0x00, 0x00,   /* mov rsp, 0x8000 */
                       0x6a, 0x23,                                 /* push ss = user data | 3 */
                       0x68, 0x00, 0x70, 0x00, 0x00,               /* push rsp = 0x7000 */
                       0x68, 0x02, 0x30, 0x00, 0x00,               /* push rflags = IOPL 3 */
                       0x6a, 0x1b,                                 /* push cs = user code | 3 */
                       0x68, 0x00, 0x01, 0x01, 0x00,               /* push rip = 0x10100 */
                       0x48, 0xcf };                               /* iretq */
    memcpy(mem + 0x10000, stub, sizeof stub);

    uint8_t code[] = { 0xb9, 0, 0, 0, 0,          /* mov ecx, n */
                       0x66, 0xba, 0xf8, 0x03,    /* mov dx, 0x3f8 */
                       0xee,                      /* 1: out dx, al */
                       0xff, 0xc9,                /* dec ecx */
                       0x75, 0xfb,                /* jnz 1b */
                       0x66, 0xba, 0xf4, 0x00,    /* mov dx, 0xf4 */
                       0xef };                    /* out dx, eax */
    memcpy(code + 1, &n, 4);
    memcpy(mem + 0x10100, code, sizeof code);

    int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
    CHECK(vcpu);
    int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    struct kvm_run *run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);

    struct kvm_sregs sregs;
    CHECK(ioctl(vcpu, KVM_GET_SREGS, &sregs));
    sregs.cs = seg(0x08, 0xb, 0, 1, 0, 1);
    sregs.ss = sregs.ds = sregs.es = sregs.fs = sregs.gs = seg(0x10, 0x3, 0, 0, 1, 1);
    sregs.gdt.base = 0x500;
    sregs.gdt.limit = sizeof gdt - 1;
    sregs.tr = seg(0x28, 0xb, 0, 0, 0, 0);
    sregs.tr.base = 0x20000;
    sregs.tr.limit = 0x2068;
    sregs.tr.g = 0;
    sregs.cr3 = 0x1000;
    sregs.cr4 = 1 << 5;                        /* PAE */
    sregs.cr0 = 0x80000011;                    /* PG | ET | PE */
    sregs.efer = (1 << 8) | (1 << 10);         /* LME | LMA */
    CHECK(ioctl(vcpu, KVM_SET_SREGS, &sregs));
    struct kvm_regs regs = { .rip = 0x10000, .rflags = 0x2 };
    CHECK(ioctl(vcpu, KVM_SET_REGS, &regs));

    uint64_t exits = 0;
    double start = now();
    for (;;) {
        CHECK(ioctl(vcpu, KVM_RUN, 0));
        exits++;
        if (run->exit_reason != KVM_EXIT_IO) {
            fprintf(stderr, "unexpected exit %u\n", run->exit_reason);
            return 1;
        }
        if (run->io.port == 0xf4)
            break;
    }
    double seconds = now() - start;
    printf("exits %llu seconds %.6f exits_per_second %.0f\n", (unsigned long long)exits, seconds, exits / seconds);
    return 0;
}
