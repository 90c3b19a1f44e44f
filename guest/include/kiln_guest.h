/*
 * Kiln test-guest library: everything a test body (tests/ *.c) may use.
 * Test bodies run at ring 3 in 64-bit mode with IOPL=3, identity-mapped
 * memory (first 4 GiB, user-accessible) and interrupts disabled.
 */
#ifndef KILN_GUEST_H
#define KILN_GUEST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "kiln_layout.h"

#define NORETURN __attribute__((noreturn))

/* ---- Port I/O (Linux argument order: value first, then port) ---- */
static inline void outb(uint8_t v, uint16_t port) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outw(uint16_t v, uint16_t port) { __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outl(uint32_t v, uint16_t port) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port) { uint8_t v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline uint16_t inw(uint16_t port) { uint16_t v; __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline uint32_t inl(uint16_t port) { uint32_t v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }

/* ---- MMIO: one volatile access of exactly the given width ---- */
static inline uint8_t mmio_read8(uintptr_t a) { return *(volatile uint8_t *)a; }
static inline uint16_t mmio_read16(uintptr_t a) { return *(volatile uint16_t *)a; }
static inline uint32_t mmio_read32(uintptr_t a) { return *(volatile uint32_t *)a; }
static inline uint64_t mmio_read64(uintptr_t a) { return *(volatile uint64_t *)a; }
static inline void mmio_write8(uintptr_t a, uint8_t v) { *(volatile uint8_t *)a = v; }
static inline void mmio_write16(uintptr_t a, uint16_t v) { *(volatile uint16_t *)a = v; }
static inline void mmio_write32(uintptr_t a, uint32_t v) { *(volatile uint32_t *)a = v; }
static inline void mmio_write64(uintptr_t a, uint64_t v) { *(volatile uint64_t *)a = v; }

/* ---- CPU helpers ---- */
static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }

/*
 * Service call into ring 0 (kernel/trap.c). int/syscall do not work on the
 * PVM host, so ring 3 raises #UD with a magic value in RAX instead.
 */
static inline uint64_t kiln_service(uint64_t nr, uint64_t arg)
{
    uint64_t ret;
    __asm__ volatile("ud2" : "=a"(ret) : "a"((uint64_t)KILN_SVC_MAGIC), "D"(nr), "S"(arg) : "memory");
    return ret;
}

/* A service call with a second argument in RDX (e.g. KILN_SVC_WRMSR's value). */
static inline uint64_t kiln_service2(uint64_t nr, uint64_t arg, uint64_t arg2)
{
    uint64_t ret;
    __asm__ volatile("ud2" : "=a"(ret) : "a"((uint64_t)KILN_SVC_MAGIC), "D"(nr), "S"(arg), "d"(arg2) : "memory");
    return ret;
}

/*
 * The same service through SYSCALL (PVM hosts only, after kiln_syscall_enable(); see KILN_SYSCALL_ENTRY_VA).
 * SYSCALL clobbers RCX and R11.
 */
static inline uint64_t kiln_syscall2(uint64_t nr, uint64_t arg, uint64_t arg2)
{
    uint64_t ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"((uint64_t)KILN_SVC_MAGIC), "D"(nr), "S"(arg), "d"(arg2)
                     : "rcx", "r11", "memory");
    return ret;
}

static inline void kiln_syscall_enable(void)
{
    __asm__ volatile("ud2" : : "a"((uint64_t)KILN_SVC_MAGIC), "D"((uint64_t)KILN_SVC_WRMSR),
                     "S"((uint64_t)MSR_LSTAR_INDEX), "d"(KILN_SYSCALL_ENTRY_VA) : "memory");
}

/*
 * A test's page-fault handler, called at ring 0 (so: integer code only, e.g. RING0 functions in tests/) for every
 * #PF that is not a service call; returns true when it fixed the fault (the access is retried), false to report it.
 */
extern bool (*volatile kiln_page_fault_hook)(uint64_t cr2, uint64_t error);

/*
 * CPUID as configured by the VMM. Executed at ring 0 through a service call:
 * on a PVM host without CPUID faulting, a ring-3 CPUID runs natively and
 * returns the HOST's values (e.g. the host's APIC ids).
 */
static inline void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
    uint64_t a, b, c, d;
    __asm__ volatile("ud2"
                     : "=a"(a), "=b"(b), "=c"(c), "=d"(d)
                     : "a"((uint64_t)KILN_SVC_MAGIC), "D"((uint64_t)KILN_SVC_CPUID), "S"((uint64_t)leaf),
                       "d"((uint64_t)sub)
                     : "memory");
    r[0] = (uint32_t)a;
    r[1] = (uint32_t)b;
    r[2] = (uint32_t)c;
    r[3] = (uint32_t)d;
}

/* The CPUID instruction executed right here at ring 3 (may be the host's view, see above). */
static inline void cpuid_native(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}

/* Initial APIC id of the executing CPU (CPUID leaf 1, EBX[31:24]). */
static inline uint32_t cpu_apic_id(void)
{
    uint32_t r[4];
    cpuid(1, 0, r);
    return r[1] >> 24;
}

/* Write code to the debug-exit port (VMM exits with (code << 1) | 1). */
NORETURN void debug_exit(uint32_t code);
/* Stop this CPU for good (ring-0 cli; hlt). */
NORETURN void halt_cpu(void);

/* ---- COM1 serial output (polls LSR.THRE before every byte) ---- */
int putchar(int c);
int puts(const char *s);                   /* like libc: appends '\n' */
void serial_write(const char *s, size_t n);
/* Blocks (polling LSR.DR) until COM1 has received a byte. */
int getchar(void);
/* Supports %d %i %u %x %X %p %s %c %%, flags '-' '0', width, and l/ll/z/h. */
int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int vprintf(const char *fmt, va_list ap);
int snprintf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- Memory / strings ---- */
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);

/*
 * ---- Command line: space-separated key=value tokens ----
 * Tokens without '=' are ignored (QEMU passes the kernel path first). A value
 * may be double-quoted to contain spaces: msg="hello world".
 */
/* Copy the value of key into buf (NUL-terminated, truncated); false if absent. */
bool arg_get(const char *cmdline, const char *key, char *buf, size_t size);
/* Value of key, or NULL. Points into a small rotating pool: 8 results stay valid. */
const char *arg_str(const char *cmdline, const char *key);
/* Decimal or 0x-hex value of key; def if absent or malformed. */
uint64_t arg_u64(const char *cmdline, const char *key, uint64_t def);

/* ---- Time ---- */
uint64_t tsc_hz(void);                     /* calibrated once (CPUID, else PIT) */
void delay_us(uint64_t us);

/* ---- SMP ---- */
#define LAPIC_BASE 0xFEE00000u
/*
 * Start all other CPUs with INIT-SIPI-SIPI; each runs entry(slot) at ring 3
 * on its own stack (slot = 1, 2, ... in arrival order; the BSP is slot 0)
 * and halts when entry returns.
 */
void smp_boot_aps(void (*entry)(unsigned slot));

/*
 * The calling CPU's local APIC timer, periodic at KILN_TIMER_VECTOR (lib/lapic_timer.c). Ring 3 only sees the
 * interrupts once KILN_SVC_USER_IF turned them on; boot/isr.S counts them in timer_ticks (all CPUs).
 */
void lapic_timer_start(unsigned period_us);
void lapic_timer_stop(void);
extern volatile uint64_t timer_ticks;

/* Provided by the test registry (tests/registry.c); return value -> debug exit. */
int test_main(const char *cmdline);

#endif
