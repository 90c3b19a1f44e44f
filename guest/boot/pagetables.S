/*
 * Static page tables: identity map of the first 4 GiB with 2 MiB pages.
 * Built at assembly time (.rept) so the emulated 32-bit entry code has no
 * loop to run. Every level is Present|Writable|User so ring-3 test bodies can
 * touch any physical address (low memory, LAPIC, MMIO) directly.
 */
#define PTE_P   0x001
#define PTE_W   0x002
#define PTE_U   0x004
#define PTE_PWT 0x008
#define PTE_PCD 0x010
#define PTE_PS  0x080           /* 2 MiB page in a page directory */
#define TABLE   (PTE_P | PTE_W | PTE_U)
#define RAM2M   (PTE_P | PTE_W | PTE_U | PTE_PS)
#define MMIO2M  (RAM2M | PTE_PWT | PTE_PCD)  /* 3..4 GiB: PCI hole, IOAPIC, LAPIC */

    .section .data.pagetables, "aw"
    .balign 4096
    .globl pml4
pml4:
    .quad pdpt + TABLE
    .fill 511, 8, 0

    .balign 4096
pdpt:
    .quad pd + 0x0000 + TABLE
    .quad pd + 0x1000 + TABLE
    .quad pd + 0x2000 + TABLE
    .quad pd + 0x3000 + TABLE
    .fill 508, 8, 0

    .balign 4096
pd:                             /* four consecutive page directories */
    .set pt_addr, 0
    .rept 3 * 512               /* 0 .. 3 GiB: ordinary write-back memory */
    .quad pt_addr + RAM2M
    .set pt_addr, pt_addr + 0x200000
    .endr
    .rept 512                   /* 3 .. 4 GiB: uncached */
    .quad pt_addr + MMIO2M
    .set pt_addr, pt_addr + 0x200000
    .endr
