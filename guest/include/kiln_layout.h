/*
 * Constants shared by the assembly boot code (boot/ *.S) and the C code.
 * Everything here must stay plain #defines so the assembler can use it.
 */
#ifndef KILN_LAYOUT_H
#define KILN_LAYOUT_H

/* GDT layout (boot/gdt.S). Ring-3 selectors get RPL 3 ORed in. */
#define SEL_KCODE64     0x08
#define SEL_KDATA       0x10
#define SEL_UCODE64     0x18
#define SEL_UDATA       0x20
#define SEL_KCODE32     0x28    /* only used by the AP trampoline (16 -> 32 bit) */
#define SEL_TSS0        0x30    /* CPU n's 16-byte TSS descriptor is at SEL_TSS0 + 16*n */
#define GDT_FIXED_ENTRIES 6
#define GDT_SIZE        ((GDT_FIXED_ENTRIES + 2 * KILN_MAX_CPUS) * 8)

/* Per-CPU resources are statically sized; APs beyond this are parked. */
#define KILN_MAX_CPUS   16
#define KSTACK_SHIFT    13      /* 8 KiB ring-0 stack per CPU (exceptions, services) */
#define USTACK_SHIFT    15      /* 32 KiB ring-3 stack per CPU */

/*
 * IOPL=3 so ring 3 may do port I/O on VMX/SVM; IF=0; bit 1 is reserved-one.
 * (PVM ignores the IOPL; the TSS I/O bitmap in kernel/cpu.c covers that case.)
 */
#define USER_RFLAGS     0x3002

/* Where ring-3 code copies the real-mode AP trampoline (SIPI vector = addr >> 12). */
#define AP_TRAMPOLINE_ADDR 0x8000

/* Service calls: ring 3 executes ud2 with RAX = magic, RDI = number, RSI = argument. */
#define KILN_SVC_MAGIC  0x4b494c4e  /* "KILN" */
#define KILN_SVC_PING           0   /* returns argument + 1; proves the mechanism works */
#define KILN_SVC_TRIPLE_FAULT   1   /* never returns: empty IDT + ud2 */
#define KILN_SVC_HALT           2   /* never returns: cli; hlt forever on this CPU */
#define KILN_SVC_CPUID          3   /* CPUID leaf RSI, subleaf RDX, at ring 0 -> RAX..RDX */
#define KILN_SVC_RING0_CALL     4   /* calls the function at RSI (uint64_t f(void)) at ring 0 -> RAX */
#define KILN_SVC_WRMSR          5   /* wrmsr: MSR index RSI, value RDX (as a kernel's context switch does) */
#define KILN_SVC_RDMSR          6   /* rdmsr: MSR index RSI -> RAX */
#define KILN_SVC_SWITCH_TASK    7   /* a kernel's context switch: CR3 = RSI (0: keep), FS base = RDX */
#define KILN_SWITCH_USER_DS_FIRST 1 /* in SWITCH_TASK's RSI: a zero FS base loads __USER_DS, then the null selector */
#define KILN_SWITCH_NULL_SEL_FIRST 2 /* in SWITCH_TASK's RSI: a non-zero base loads the null selector first
                                        (Linux's arch_prctl(ARCH_SET_FS)) */
#define KILN_SVC_USER_IF        8   /* RSI != 0: ring 3 runs with interrupts enabled from now on; 0: disabled */
#define KILN_SVC_IDLE           9   /* sti; hlt; cli at ring 0: waits for one interrupt, as an idle kernel does */
#define KILN_SVC_INVLPG         10  /* invlpg (RSI) */
#define KILN_SVC_COUNT          11

/*
 * SYSCALL as a service entry (kiln_syscall2): on a PVM host SYSCALL from guest ring 3 jumps to MSR_LSTAR still at
 * ring 3; LSTAR points at this unmapped address, so it faults there and the #PF handler runs the service, as the
 * guest kit's Linux does for its system calls. Elsewhere (VMX/SVM) SYSCALL enters ring 0 at the same unmapped
 * address, a #PF at ring 0 that the handler does not take for a system call: use ud2 services there.
 */
#define KILN_SYSCALL_ENTRY_VA   0x7f0000000000ul
#define MSR_LSTAR_INDEX         0xC0000082u

/* The only device interrupt the test guest handles: its local APIC timer (boot/isr.S counts and EOIs it). */
#define KILN_TIMER_VECTOR       32
/* A TLB-shootdown IPI (test=pvflush): boot/isr.S reloads CR3 (flushing the TLB), counts it in flush_acks, EOIs. */
#define KILN_FLUSH_VECTOR       33

/* QEMU isa-debug-exit compatible port; the VMM exits with (code << 1) | 1. */
#define DEBUG_EXIT_PORT 0xf4
#define KILN_EXIT_EXCEPTION 0x7e    /* unexpected CPU exception */
#define KILN_EXIT_BAD_TEST  0x7d    /* missing/unknown test= */

#define MULTIBOOT_BOOT_MAGIC 0x2BADB002

#endif
