/*
 * Ring-3 C runtime for the BSP: fetch the command line from the multiboot
 * info, run test_main() and report its result through the debug-exit port.
 */
#include "kiln_guest.h"

struct multiboot_info {
    uint32_t flags;
    uint32_t mem_lower, mem_upper;
    uint32_t boot_device;
    uint32_t cmdline;           /* valid if flags bit 2 */
};
#define MBI_FLAG_CMDLINE (1u << 2)

extern uint32_t boot_mb_magic, boot_mb_info;   /* saved by boot/entry32.S */

/* Copied because the loader may have put it in memory a test wants to reuse. */
static char cmdline_buf[4096];

void _user_start(void);

void _user_start(void)
{
    const char *src = "";
    if (boot_mb_magic == MULTIBOOT_BOOT_MAGIC) {
        const struct multiboot_info *mbi = (const void *)(uintptr_t)boot_mb_info;
        if ((mbi->flags & MBI_FLAG_CMDLINE) && mbi->cmdline)
            src = (const char *)(uintptr_t)mbi->cmdline;
    } else {
        printf("guest: bad multiboot magic 0x%x, empty command line\n", boot_mb_magic);
    }

    size_t n = strlen(src);
    if (n >= sizeof(cmdline_buf))
        n = sizeof(cmdline_buf) - 1;
    memcpy(cmdline_buf, src, n);
    cmdline_buf[n] = '\0';

    debug_exit((uint32_t)test_main(cmdline_buf));
}

void debug_exit(uint32_t code)
{
    outl(code, DEBUG_EXIT_PORT);
    halt_cpu();                 /* only reached if the VMM has no debug-exit device */
}

void halt_cpu(void)
{
    for (;;)
        kiln_service(KILN_SVC_HALT, 0);
}
