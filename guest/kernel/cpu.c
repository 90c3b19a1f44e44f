/*
 * Per-CPU descriptor-table setup (ring 0, emulated): the shared IDT for the
 * 32 exception vectors, the local APIC timer and the TLB-shootdown IPI, and
 * one TSS per CPU whose RSP0 is that CPU's kernel stack, so exceptions and
 * service calls from ring 3 have a stack to run on.
 *
 * Port I/O from ring 3: the PVM host runs guest ring 3 with the hardware
 * IOPL forced to 0 and drops the guest's IOPL, so every in/out traps and
 * KVM's emulator checks it against the guest TSS I/O bitmap. Hence, besides
 * IOPL=3 (enough on VMX/SVM), every TSS carries an all-zero bitmap. The TSSes
 * are packed 128 bytes apart in front of ONE shared bitmap, each with its own
 * iomap_base pointing at it, so 16 CPUs cost 8 KiB instead of 128 KiB.
 */
#include "kernel.h"

struct tss {
    uint32_t reserved0;
    uint64_t rsp[3];
    uint64_t reserved1;
    uint64_t ist[7];
    uint64_t reserved2;
    uint16_t reserved3;
    uint16_t iomap_base;
} __attribute__((packed));

struct idt_gate {
    uint16_t offset_lo;
    uint16_t selector;
    uint8_t ist;
    uint8_t type_attr;
    uint16_t offset_mid;
    uint32_t offset_hi;
    uint32_t reserved;
};

struct desc_ptr {
    uint16_t limit;
    uint64_t base;
} __attribute__((packed));

extern uint64_t gdt[];                      /* boot/gdt.S */
extern const uint64_t isr_stub_table[32];   /* boot/isr.S */
extern const char isr_timer[];              /* boot/isr.S: vector KILN_TIMER_VECTOR */
extern const char isr_flush[];              /* boot/isr.S: vector KILN_FLUSH_VECTOR */
extern char kstacks[];                      /* boot/entry64.S */

#define TSS_STRIDE 128

static struct {
    union {
        struct tss tss;
        uint8_t pad[TSS_STRIDE];
    } cpu[KILN_MAX_CPUS];
    uint8_t iobitmap[65536 / 8];    /* bit set = port denied; all clear */
    uint8_t iobitmap_end;           /* architecturally required 0xff terminator */
} tss_area __attribute__((aligned(TSS_STRIDE))) = { .iobitmap_end = 0xff };
static struct idt_gate idt[KILN_FLUSH_VECTOR + 1] __attribute__((aligned(16)));

void idt_init(void)
{
    for (int v = 0; v <= KILN_FLUSH_VECTOR; v++) {
        uint64_t h = v < 32 ? isr_stub_table[v] : v == KILN_TIMER_VECTOR ? (uint64_t)isr_timer : (uint64_t)isr_flush;
        idt[v].offset_lo = (uint16_t)h;
        idt[v].selector = SEL_KCODE64;
        idt[v].ist = 0;
        idt[v].type_attr = 0x8e;            /* present, DPL 0, 64-bit interrupt gate (IF=0) */
        idt[v].offset_mid = (uint16_t)(h >> 16);
        idt[v].offset_hi = (uint32_t)(h >> 32);
        idt[v].reserved = 0;
    }
}

void cpu_init(unsigned cpu)
{
    struct tss *t = &tss_area.cpu[cpu].tss;
    uint64_t base = (uint64_t)t;
    uint16_t iomap = (uint16_t)((uint64_t)tss_area.iobitmap - base);
    uint64_t limit = iomap + sizeof(tss_area.iobitmap);     /* includes the 0xff byte */

    t->rsp[0] = (uint64_t)kstacks + ((uint64_t)(cpu + 1) << KSTACK_SHIFT);
    t->iomap_base = iomap;

    uint64_t *d = &gdt[(SEL_TSS0 >> 3) + 2 * cpu];
    d[0] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89ull << 40) /* present, available 64-bit TSS */
         | (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
    d[1] = base >> 32;

    struct desc_ptr idtr = { sizeof(idt) - 1, (uint64_t)idt };
    __asm__ volatile("lidt %0" : : "m"(idtr));
    __asm__ volatile("ltr %w0" : : "r"((uint16_t)(SEL_TSS0 + 16 * cpu)) : "memory");
}
