/*
 * Real-mode AP start-up code. It is never executed in place: lib/smp.c copies
 * [ap_trampoline_start, ap_trampoline_end) to AP_TRAMPOLINE_ADDR and sends a
 * SIPI with vector AP_TRAMPOLINE_ADDR >> 12, so the AP starts here with
 * CS = AP_TRAMPOLINE_ADDR >> 4, IP = 0. Therefore only offsets relative to
 * ap_trampoline_start may be used for data inside it.
 * It loads the shared GDT, enables protection and far-jumps straight to
 * ap_entry32 in the kernel image (flat 32-bit code segment).
 */
#include "kiln_layout.h"

    .section .rodata.ap_trampoline, "a"
    .code16
    .globl ap_trampoline_start, ap_trampoline_end
ap_trampoline_start:
    cli
    cld
    movw %cs, %ax
    movw %ax, %ds
    lgdtl ap_gdt_ptr - ap_trampoline_start
    movl %cr0, %eax
    orl $1, %eax                    /* CR0.PE */
    movl %eax, %cr0
    ljmpl $SEL_KCODE32, $ap_entry32
    .balign 8
ap_gdt_ptr:
    .word GDT_SIZE - 1
    .long gdt
ap_trampoline_end:
    .code64
