/* Ring-0 internals. Code including this runs emulated: integer-only, small. */
#ifndef KILN_KERNEL_H
#define KILN_KERNEL_H

#include "kiln_guest.h"

/* Layout produced by boot/isr.S: pushed GPRs, then vector/error, then the CPU frame. */
struct trap_frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector, error;
    uint64_t rip, cs, rflags, rsp, ss;
};

void idt_init(void);
void cpu_init(unsigned cpu);
void trap_handler(struct trap_frame *f);
NORETURN void halt_forever(void);          /* boot/entry64.S */

#endif
