/*
 * 64-bit ring-0 entry for the BSP and the APs: segments, per-CPU kernel stack,
 * IDT + TSS (kernel/cpu.c), then IRETQ to ring 3. Still emulated on PVM, so
 * the heavy lifting is left to ring-3 C code.
 */
#include "kiln_layout.h"

    .text
    .code64

.macro LOAD_KERNEL_SEGMENTS
    movw $SEL_KDATA, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorl %eax, %eax
    movw %ax, %fs
    movw %ax, %gs
.endm

    .globl bsp_entry64
bsp_entry64:
    LOAD_KERNEL_SEGMENTS
    movq $(kstacks + (1 << KSTACK_SHIFT)), %rsp
    call idt_init                   /* once, shared by all CPUs */
    xorl %edi, %edi
    call cpu_init                   /* CPU slot 0: TSS, TR, IDTR */
    movl $_user_start, %edi
    /* -8: the C entry expects the stack as if a return address had been pushed */
    movq $(ustacks + (1 << USTACK_SHIFT) - 8), %rsi
    xorl %edx, %edx
    jmp enter_user

    .globl ap_entry64
ap_entry64:
    LOAD_KERNEL_SEGMENTS
    /* APs start concurrently; an atomic counter hands out per-CPU slots. */
    movl $1, %eax
    lock xaddl %eax, next_cpu_slot(%rip)
    cmpl $KILN_MAX_CPUS, %eax
    jae halt_forever                /* no stack/TSS left for this CPU: park it */
    movl %eax, %ebx
    leaq 1(%rbx), %rax
    shlq $KSTACK_SHIFT, %rax
    addq $kstacks, %rax
    movq %rax, %rsp
    movl %ebx, %edi
    call cpu_init
    movl $ap_user_start, %edi       /* lib/smp.c */
    leaq 1(%rbx), %rsi
    shlq $USTACK_SHIFT, %rsi
    addq $(ustacks - 8), %rsi
    movl %ebx, %edx                 /* ring-3 argument: CPU slot */
    jmp enter_user

/*
 * enter_user(rip, rsp, arg): build an IRETQ frame for ring 3 with IOPL=3 and
 * interrupts off; arg arrives in RDI as the first C argument.
 */
    .globl enter_user
enter_user:
    pushq $(SEL_UDATA | 3)
    pushq %rsi
    pushq $USER_RFLAGS
    pushq $(SEL_UCODE64 | 3)
    pushq %rdi
    movq %rdx, %rdi
    xorl %eax, %eax
    movw %ax, %ds
    movw %ax, %es
    iretq

    .globl halt_forever
halt_forever:
    cli
    hlt
    jmp halt_forever

    .data
    .balign 4
next_cpu_slot:
    .long 1                         /* slot 0 is the BSP */

/* Stacks are not zeroed or stored in the file (NOLOAD in linker.ld). */
    .section .stack, "aw", @nobits
    .balign 4096
    .globl kstacks, ustacks
kstacks:
    .skip KILN_MAX_CPUS << KSTACK_SHIFT
ustacks:
    .skip KILN_MAX_CPUS << USTACK_SHIFT
