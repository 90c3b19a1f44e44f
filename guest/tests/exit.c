/* test=exit code=N msg=TEXT: smallest end-to-end check (boot, serial, cmdline, exit code). */
#include "tests.h"

int test_exit(const char *cmdline)
{
    const char *msg = arg_str(cmdline, "msg");
    uint32_t code = (uint32_t)arg_u64(cmdline, "code", 0);
    puts(msg ? msg : "hello from kiln test guest");
    printf("exit %u\n", code);
    return (int)code;
}
