/* test=fault: a privileged instruction at ring 3 must end in the exception path (exit 0x7e). */
#include "tests.h"

int test_fault(const char *cmdline)
{
    (void)cmdline;
    puts("executing hlt at ring 3");
    __asm__ volatile("hlt");
    puts("hlt at ring 3 did not fault");
    return 4;
}
