/* test=triple: the VMM must notice a triple fault (QEMU -no-reboot exits). */
#include "tests.h"

int test_triple(const char *cmdline)
{
    (void)cmdline;
    puts("about to triple fault");
    kiln_service(KILN_SVC_TRIPLE_FAULT, 0);
    puts("still alive after triple fault?");
    return 3;
}
