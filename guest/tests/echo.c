/*
 * test=echo: console input. Prints "echo ready", then echoes every byte received on COM1 as "<hex>" until it
 * reads 'q', then prints "echo done N" (bytes seen) and exits 0. Shows what the VMM delivers, byte for byte.
 */
#include "tests.h"

int test_echo(const char *cmdline)
{
    (void)cmdline;
    puts("echo ready");
    unsigned n = 0;
    for (;;) {
        int c = getchar();
        if (c == 'q')
            break;
        n++;
        printf("<%x>", (unsigned)c);
    }
    printf("\necho done %u\n", n);
    return 0;
}
