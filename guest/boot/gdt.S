/*
 * The one GDT shared by all CPUs. TSS descriptors (one per CPU, since a busy
 * TSS cannot be loaded twice) are filled in at runtime by kernel/cpu.c because
 * the assembler cannot split a relocated address into descriptor fields.
 */
#include "kiln_layout.h"

    .data
    .balign 16
    .globl gdt
gdt:
    .quad 0                     /* 0x00 null */
    .quad 0x00af9a000000ffff    /* 0x08 ring-0 64-bit code (L=1) */
    .quad 0x00cf92000000ffff    /* 0x10 ring-0 data */
    .quad 0x00affa000000ffff    /* 0x18 ring-3 64-bit code (DPL 3) */
    .quad 0x00cff2000000ffff    /* 0x20 ring-3 data (DPL 3) */
    .quad 0x00cf9a000000ffff    /* 0x28 ring-0 32-bit code, for the AP trampoline */
    .fill 2 * KILN_MAX_CPUS, 8, 0   /* 0x30: 64-bit TSS descriptors, 16 bytes each */
gdt_end:
    .if gdt_end - gdt != GDT_SIZE
    .error "GDT_SIZE in kiln_layout.h does not match boot/gdt.S"
    .endif

/* 32-bit lgdt reads limit + 4-byte base; the extra bytes keep it valid for 64-bit too. */
    .balign 8
    .globl gdt_ptr
gdt_ptr:
    .word GDT_SIZE - 1
    .quad gdt
