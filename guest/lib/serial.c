/*
 * COM1 output. Polls LSR.THRE before each byte so a real 16550 model never
 * drops characters; no UART initialisation is needed by QEMU or Kiln.
 * Also used by the ring-0 exception handler.
 */
#include "kiln_guest.h"

#define COM1            0x3F8
#define COM1_LSR        (COM1 + 5)
#define LSR_THRE        0x20
#define LSR_DR          0x01

int putchar(int c)
{
    while (!(inb(COM1_LSR) & LSR_THRE))
        cpu_relax();
    outb((uint8_t)c, COM1);
    return (uint8_t)c;
}

void serial_write(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        putchar(s[i]);
}

int puts(const char *s)
{
    serial_write(s, strlen(s));
    putchar('\n');
    return 0;
}

int getchar(void)
{
    while (!(inb(COM1_LSR) & LSR_DR))
        cpu_relax();
    return inb(COM1);
}
