/*
 * test=ports: unclaimed I/O ports must read as all-ones and swallow writes
 * (what the VMM should do for ports no device claims).
 */
#include "tests.h"

int test_ports(const char *cmdline)
{
    (void)cmdline;
    uint8_t b = inb(0x1234);
    uint16_t w = inw(0x2000);
    uint32_t l = inl(0x2004);
    printf("inb 0x1234 = 0x%02x\n", b);
    printf("inw 0x2000 = 0x%04x\n", w);
    printf("inl 0x2004 = 0x%08x\n", l);

    outb(0xa5, 0x1234);
    outw(0xbeef, 0x2000);
    outl(0xdeadbeef, 0x2004);
    outb(0x5a, 0x2345);
    puts("writes done");

    bool ok = b == 0xff && w == 0xffff && l == 0xffffffff;
    puts(ok ? "ports ok" : "ports FAILED: expected all-ones");
    return ok ? 0 : 2;
}
