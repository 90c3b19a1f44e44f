/*
 * DMA memory for virtio rings and buffers: a bump allocator over the RAM
 * after the image (linker.ld's __image_end, rounded up to 1 MiB), up to the
 * end of the multiboot "upper memory" (or 64 MiB when the loader gave none).
 * Everything stays allocated; callers keep and reuse what they got.
 */
#include "virtio.h"

extern char __image_end[];
extern uint32_t boot_mb_magic, boot_mb_info;   /* boot/entry32.S */

static uintptr_t pool_next, pool_end;

static void pool_init(void)
{
    pool_next = ((uintptr_t)__image_end + 0xfffff) & ~(uintptr_t)0xfffff;
    pool_end = 64u << 20;
    if (boot_mb_magic == MULTIBOOT_BOOT_MAGIC) {
        const uint32_t *mbi = (const uint32_t *)(uintptr_t)boot_mb_info;
        if (mbi[0] & 1)                             /* flags bit 0: mem_lower/mem_upper */
            pool_end = 0x100000 + (uintptr_t)mbi[2] * 1024;
    }
    if (pool_end > 0xC0000000u)                     /* stay below the 3 GiB uncached area */
        pool_end = 0xC0000000u;
}

void *virtio_alloc(size_t size, size_t align)
{
    if (!pool_next)
        pool_init();
    if (align < 16)
        align = 16;
    uintptr_t p = (pool_next + align - 1) & ~(uintptr_t)(align - 1);
    if (p + size > pool_end || p + size < p) {
        printf("virtio: DMA pool exhausted (%zu bytes wanted, 0x%lx..0x%lx)\n", size,
               (unsigned long)pool_next, (unsigned long)pool_end);
        return NULL;
    }
    pool_next = p + size;
    memset((void *)p, 0, size);
    return (void *)p;
}
