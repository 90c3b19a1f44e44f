/* Prints the host's <linux/kvm.h> layout facts that Kiln mirrors in C#; KvmAbiTests compares them. */
#include <stdio.h>
#include <stddef.h>
#include <linux/kvm.h>

#define SIZE(t) printf("sizeof %s %zu\n", #t, sizeof(struct t))
#define OFF(t, f) printf("offsetof %s.%s %zu\n", #t, #f, offsetof(struct t, f))
#define IOCTL(n) printf("ioctl %s %lu\n", #n, (unsigned long)(n))
#define CAP(n) printf("cap %s %d\n", #n, (int)(n))

int main(void)
{
    SIZE(kvm_userspace_memory_region); OFF(kvm_userspace_memory_region, slot); OFF(kvm_userspace_memory_region, flags);
    OFF(kvm_userspace_memory_region, guest_phys_addr); OFF(kvm_userspace_memory_region, memory_size);
    OFF(kvm_userspace_memory_region, userspace_addr);
    SIZE(kvm_regs); OFF(kvm_regs, rax); OFF(kvm_regs, rbx); OFF(kvm_regs, rsp); OFF(kvm_regs, r8); OFF(kvm_regs, r15);
    OFF(kvm_regs, rip); OFF(kvm_regs, rflags);
    SIZE(kvm_segment); OFF(kvm_segment, base); OFF(kvm_segment, limit); OFF(kvm_segment, selector); OFF(kvm_segment, type);
    OFF(kvm_segment, present); OFF(kvm_segment, dpl); OFF(kvm_segment, db); OFF(kvm_segment, s); OFF(kvm_segment, l);
    OFF(kvm_segment, g); OFF(kvm_segment, avl); OFF(kvm_segment, unusable);
    SIZE(kvm_dtable); OFF(kvm_dtable, base); OFF(kvm_dtable, limit);
    SIZE(kvm_sregs); OFF(kvm_sregs, cs); OFF(kvm_sregs, ds); OFF(kvm_sregs, tr); OFF(kvm_sregs, ldt); OFF(kvm_sregs, gdt);
    OFF(kvm_sregs, idt); OFF(kvm_sregs, cr0); OFF(kvm_sregs, cr3); OFF(kvm_sregs, cr8); OFF(kvm_sregs, efer);
    OFF(kvm_sregs, apic_base); OFF(kvm_sregs, interrupt_bitmap);
    SIZE(kvm_fpu); OFF(kvm_fpu, fpr); OFF(kvm_fpu, fcw); OFF(kvm_fpu, fsw); OFF(kvm_fpu, ftwx); OFF(kvm_fpu, last_opcode);
    OFF(kvm_fpu, last_ip); OFF(kvm_fpu, last_dp); OFF(kvm_fpu, xmm); OFF(kvm_fpu, mxcsr);
    SIZE(kvm_cpuid_entry2); OFF(kvm_cpuid_entry2, function); OFF(kvm_cpuid_entry2, index); OFF(kvm_cpuid_entry2, flags);
    OFF(kvm_cpuid_entry2, eax); OFF(kvm_cpuid_entry2, ebx); OFF(kvm_cpuid_entry2, ecx); OFF(kvm_cpuid_entry2, edx);
    SIZE(kvm_cpuid2); SIZE(kvm_msrs); SIZE(kvm_msr_list);
    SIZE(kvm_msr_entry); OFF(kvm_msr_entry, index); OFF(kvm_msr_entry, data);
    SIZE(kvm_irq_level); OFF(kvm_irq_level, irq); OFF(kvm_irq_level, level);
    SIZE(kvm_pit_config); OFF(kvm_pit_config, flags);
    SIZE(kvm_translation); OFF(kvm_translation, linear_address); OFF(kvm_translation, physical_address);
    OFF(kvm_translation, valid); OFF(kvm_translation, writeable); OFF(kvm_translation, usermode);
    SIZE(kvm_irqfd); OFF(kvm_irqfd, fd); OFF(kvm_irqfd, gsi); OFF(kvm_irqfd, flags); OFF(kvm_irqfd, resamplefd);
    SIZE(kvm_ioeventfd); OFF(kvm_ioeventfd, datamatch); OFF(kvm_ioeventfd, addr); OFF(kvm_ioeventfd, len);
    OFF(kvm_ioeventfd, fd); OFF(kvm_ioeventfd, flags);
    SIZE(kvm_msi); OFF(kvm_msi, address_lo); OFF(kvm_msi, address_hi); OFF(kvm_msi, data); OFF(kvm_msi, flags); OFF(kvm_msi, devid);
    SIZE(kvm_enable_cap); OFF(kvm_enable_cap, cap); OFF(kvm_enable_cap, flags);
    SIZE(kvm_dirty_log); OFF(kvm_dirty_log, slot); OFF(kvm_dirty_log, dirty_bitmap);
    SIZE(kvm_clock_data); OFF(kvm_clock_data, clock); OFF(kvm_clock_data, flags); OFF(kvm_clock_data, realtime);
    OFF(kvm_clock_data, host_tsc);
    SIZE(kvm_lapic_state); SIZE(kvm_vcpu_events); SIZE(kvm_debugregs); SIZE(kvm_xsave); SIZE(kvm_xcrs);
    SIZE(kvm_irqchip); SIZE(kvm_pit_state2); SIZE(kvm_mp_state);

    OFF(kvm_run, immediate_exit); OFF(kvm_run, exit_reason); OFF(kvm_run, io);
    printf("union kvm_run.io.direction %zu\n", offsetof(struct kvm_run, io.direction) - offsetof(struct kvm_run, io));
    printf("union kvm_run.io.size %zu\n", offsetof(struct kvm_run, io.size) - offsetof(struct kvm_run, io));
    printf("union kvm_run.io.port %zu\n", offsetof(struct kvm_run, io.port) - offsetof(struct kvm_run, io));
    printf("union kvm_run.io.count %zu\n", offsetof(struct kvm_run, io.count) - offsetof(struct kvm_run, io));
    printf("union kvm_run.io.data_offset %zu\n", offsetof(struct kvm_run, io.data_offset) - offsetof(struct kvm_run, io));
    printf("union kvm_run.mmio.phys_addr %zu\n", offsetof(struct kvm_run, mmio.phys_addr) - offsetof(struct kvm_run, io));
    printf("union kvm_run.mmio.data %zu\n", offsetof(struct kvm_run, mmio.data) - offsetof(struct kvm_run, io));
    printf("union kvm_run.mmio.len %zu\n", offsetof(struct kvm_run, mmio.len) - offsetof(struct kvm_run, io));
    printf("union kvm_run.mmio.is_write %zu\n", offsetof(struct kvm_run, mmio.is_write) - offsetof(struct kvm_run, io));
    printf("union kvm_run.internal.suberror %zu\n", offsetof(struct kvm_run, internal.suberror) - offsetof(struct kvm_run, io));
    printf("union kvm_run.internal.ndata %zu\n", offsetof(struct kvm_run, internal.ndata) - offsetof(struct kvm_run, io));
    printf("union kvm_run.internal.data %zu\n", offsetof(struct kvm_run, internal.data) - offsetof(struct kvm_run, io));
    printf("union kvm_run.system_event.type %zu\n", offsetof(struct kvm_run, system_event.type) - offsetof(struct kvm_run, io));

    IOCTL(KVM_GET_API_VERSION); IOCTL(KVM_CREATE_VM); IOCTL(KVM_GET_MSR_INDEX_LIST); IOCTL(KVM_CHECK_EXTENSION);
    IOCTL(KVM_GET_VCPU_MMAP_SIZE); IOCTL(KVM_GET_SUPPORTED_CPUID); IOCTL(KVM_CREATE_VCPU); IOCTL(KVM_GET_DIRTY_LOG);
    IOCTL(KVM_SET_USER_MEMORY_REGION); IOCTL(KVM_SET_TSS_ADDR); IOCTL(KVM_SET_IDENTITY_MAP_ADDR); IOCTL(KVM_CREATE_IRQCHIP);
    IOCTL(KVM_IRQ_LINE); IOCTL(KVM_GET_IRQCHIP); IOCTL(KVM_SET_IRQCHIP); IOCTL(KVM_SET_GSI_ROUTING); IOCTL(KVM_IRQFD);
    IOCTL(KVM_CREATE_PIT2); IOCTL(KVM_IOEVENTFD); IOCTL(KVM_SET_CLOCK); IOCTL(KVM_GET_CLOCK); IOCTL(KVM_GET_PIT2);
    IOCTL(KVM_SET_PIT2); IOCTL(KVM_SIGNAL_MSI); IOCTL(KVM_ENABLE_CAP); IOCTL(KVM_RUN); IOCTL(KVM_GET_REGS); IOCTL(KVM_SET_REGS);
    IOCTL(KVM_GET_SREGS); IOCTL(KVM_SET_SREGS); IOCTL(KVM_TRANSLATE); IOCTL(KVM_GET_MSRS); IOCTL(KVM_SET_MSRS);
    IOCTL(KVM_GET_FPU); IOCTL(KVM_SET_FPU); IOCTL(KVM_GET_LAPIC); IOCTL(KVM_SET_LAPIC); IOCTL(KVM_SET_CPUID2);
    IOCTL(KVM_GET_CPUID2); IOCTL(KVM_GET_MP_STATE); IOCTL(KVM_SET_MP_STATE); IOCTL(KVM_GET_VCPU_EVENTS);
    IOCTL(KVM_SET_VCPU_EVENTS); IOCTL(KVM_GET_DEBUGREGS); IOCTL(KVM_SET_DEBUGREGS); IOCTL(KVM_SET_TSC_KHZ);
    IOCTL(KVM_GET_TSC_KHZ); IOCTL(KVM_GET_XSAVE); IOCTL(KVM_SET_XSAVE); IOCTL(KVM_GET_XCRS); IOCTL(KVM_SET_XCRS);
    IOCTL(KVM_KVMCLOCK_CTRL);

    CAP(KVM_CAP_IRQCHIP); CAP(KVM_CAP_HLT); CAP(KVM_CAP_USER_MEMORY); CAP(KVM_CAP_SET_TSS_ADDR); CAP(KVM_CAP_EXT_CPUID);
    CAP(KVM_CAP_PIT); CAP(KVM_CAP_NOP_IO_DELAY); CAP(KVM_CAP_SYNC_MMU); CAP(KVM_CAP_PIT2); CAP(KVM_CAP_SET_IDENTITY_MAP_ADDR);
    CAP(KVM_CAP_ADJUST_CLOCK); CAP(KVM_CAP_IRQ_ROUTING); CAP(KVM_CAP_IRQFD); CAP(KVM_CAP_IOEVENTFD); CAP(KVM_CAP_PIT_STATE2);
    CAP(KVM_CAP_VCPU_EVENTS); CAP(KVM_CAP_DEBUGREGS); CAP(KVM_CAP_XSAVE); CAP(KVM_CAP_XCRS); CAP(KVM_CAP_TSC_CONTROL);
    CAP(KVM_CAP_GET_TSC_KHZ); CAP(KVM_CAP_SIGNAL_MSI); CAP(KVM_CAP_IMMEDIATE_EXIT); CAP(KVM_CAP_NR_MEMSLOTS);
    CAP(KVM_CAP_MAX_VCPUS); CAP(KVM_CAP_NR_VCPUS);
    return 0;
}
