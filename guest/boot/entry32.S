/*
 * Multiboot v1 header and the 32-bit protected-mode entry points (BSP from
 * the boot loader, APs from the real-mode trampoline).
 *
 * Everything here runs at ring 0 outside long mode, so on the PVM host it is
 * executed by KVM's instruction emulator: keep it short and straight-line.
 */
#include "kiln_layout.h"

#define MB_HEADER_MAGIC 0x1BADB002
#define MB_FLAGS        0x00000002      /* bit 1: please provide memory info */

/* Must sit in the first 8 KiB of the file; the linker script puts it first. */
    .section .multiboot, "a"
    .balign 4
    .long MB_HEADER_MAGIC
    .long MB_FLAGS
    .long -(MB_HEADER_MAGIC + MB_FLAGS)

/* CR4: PAE, plus OSFXSR|OSXMMEXCPT so ring-3 C code may use SSE. */
#define CR4_BITS    0x00000620
/* CR0: clear CD, NW, EM, TS; set PG, NE, MP, PE. */
#define CR0_CLEAR   0x9ffffff3
#define CR0_SET     0x80000023
#define MSR_EFER    0xC0000080
#define EFER_LME    0x00000100

/*
 * Shared by BSP and APs: static identity-mapped page tables, PAE, EFER.LME,
 * paging on (we are now in compatibility mode), far jump to 64-bit code.
 * The caller must already have our GDT loaded.
 */
.macro ENTER_LONG_MODE target
    movl $pml4, %eax
    movl %eax, %cr3
    movl %cr4, %eax
    orl $CR4_BITS, %eax
    movl %eax, %cr4
    movl $MSR_EFER, %ecx
    rdmsr
    orl $EFER_LME, %eax
    wrmsr
    movl %cr0, %eax
    andl $CR0_CLEAR, %eax
    orl $CR0_SET, %eax
    movl %eax, %cr0
    ljmp $SEL_KCODE64, $\target
.endm

    .text
    .code32

/* Boot loader entry: EAX = multiboot magic, EBX = multiboot info (physical). */
    .globl _start
_start:
    cli
    cld
    movl %eax, boot_mb_magic
    movl %ebx, boot_mb_info
    lgdt gdt_ptr
    ENTER_LONG_MODE bsp_entry64

/* AP entry, reached from boot/ap_trampoline.S with CS = SEL_KCODE32. */
    .globl ap_entry32
ap_entry32:
    movw $SEL_KDATA, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    ENTER_LONG_MODE ap_entry64

    .data
    .balign 4
/* Saved for the ring-3 runtime (lib/runtime.c), which reads the command line. */
    .globl boot_mb_magic, boot_mb_info
boot_mb_magic:  .long 0
boot_mb_info:   .long 0
