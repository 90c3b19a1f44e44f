/* Test bodies: int test_NAME(const char *cmdline); registered in tests/registry.c. */
#ifndef KILN_TESTS_H
#define KILN_TESTS_H

#include "kiln_guest.h"

int test_exit(const char *cmdline);
int test_smp(const char *cmdline);
int test_ports(const char *cmdline);
int test_triple(const char *cmdline);
int test_pio(const char *cmdline);
int test_fault(const char *cmdline);
int test_reboot(const char *cmdline);
int test_echo(const char *cmdline);
int test_rtc(const char *cmdline);
int test_poweroff(const char *cmdline);
int test_powerbutton(const char *cmdline);
int test_virtio_blk(const char *cmdline);
int test_virtio_rng(const char *cmdline);
int test_virtio_hostile(const char *cmdline);
int test_virtio_console(const char *cmdline);
int test_emulate(const char *cmdline);
int test_virtio_net(const char *cmdline);
int test_dirty(const char *cmdline);
int test_counter(const char *cmdline);
int test_devdirty(const char *cmdline);
int test_disk_writer(const char *cmdline);
int test_fsbase(const char *cmdline);
int test_tlb(const char *cmdline);
int test_pvflush(const char *cmdline);
int test_ptrecycle(const char *cmdline);
int test_ptwrite(const char *cmdline);
int test_xstate(const char *cmdline);
int test_port_sweep(const char *cmdline);
int test_mmio_sweep(const char *cmdline);

#endif
