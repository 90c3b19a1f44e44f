/*
 * Exception entry stubs for vectors 0-31. Each pushes a dummy error code when
 * the CPU does not, then its vector, and joins isr_common, which saves the
 * general registers as a struct trap_frame (kernel/kernel.h) and calls
 * trap_handler(). Only integer instructions: this runs under emulation.
 */
    .text
    .code64

.macro ISR vec
isr_\vec:
    .if (\vec == 8) || ((\vec >= 10) && (\vec <= 14)) || (\vec == 17) || (\vec == 21) || (\vec == 29) || (\vec == 30)
    .else
    pushq $0
    .endif
    pushq $\vec
    jmp isr_common
.endm

.irp vec, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    ISR \vec
.endr

isr_common:
    cld
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, %rdi                 /* 16-byte aligned here (see kernel.h) */
    call trap_handler
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    addq $16, %rsp                  /* vector + error code */
    iretq

/*
 * The local APIC timer (KILN_TIMER_VECTOR): count the tick, EOI, return. Test bodies that turn it on
 * (lib/lapic_timer.c) use it to interrupt ring 3 and to wake an idle CPU.
 */
    .globl isr_timer
isr_timer:
    pushq %rax
    lock incq timer_ticks(%rip)
    movq $0xfee000b0, %rax          /* LAPIC EOI register */
    movl $0, (%rax)
    popq %rax
    iretq

/* A TLB shootdown (KILN_FLUSH_VECTOR): reloading CR3 flushes this CPU's non-global translations. */
    .globl isr_flush
isr_flush:
    pushq %rax
    movq %cr3, %rax
    movq %rax, %cr3
    lock incq flush_acks(%rip)
    movq $0xfee000b0, %rax
    movl $0, (%rax)
    popq %rax
    iretq

    .data
    .balign 8
    .globl timer_ticks, flush_acks
timer_ticks:
    .quad 0
flush_acks:
    .quad 0

    .section .rodata
    .balign 8
    .globl isr_stub_table
isr_stub_table:
.irp vec, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad isr_\vec
.endr
