using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Kiln.Kvm;
using Kiln.Tests.Support;

namespace Kiln.Tests.Kvm;

/// <summary>Every struct, offset, ioctl number and capability Kiln mirrors from &lt;linux/kvm.h&gt; equals what the
/// host's C compiler computes from the real header.</summary>
public sealed class KvmAbiTests
{
    private static readonly Lazy<Dictionary<string, ulong>> Facts = new(() =>
        NativeProgram.CompileAndRun(RepoPaths.Combine("tests", "Kiln.Tests", "Native", "kvm_abi.c"))
            .Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(' '))
            .ToDictionary(p => p[0] + " " + p[1], p => ulong.Parse(p[2])));

    private static readonly (string Kernel, Type Type)[] Structs =
    [
        ("kvm_userspace_memory_region", typeof(KvmUserspaceMemoryRegion)), ("kvm_regs", typeof(KvmRegs)),
        ("kvm_segment", typeof(KvmSegment)), ("kvm_dtable", typeof(KvmDtable)), ("kvm_sregs", typeof(KvmSregs)),
        ("kvm_fpu", typeof(KvmFpu)), ("kvm_cpuid_entry2", typeof(KvmCpuidEntry2)), ("kvm_msr_entry", typeof(KvmMsrEntry)),
        ("kvm_irq_level", typeof(KvmIrqLevel)), ("kvm_pit_config", typeof(KvmPitConfig)),
        ("kvm_translation", typeof(KvmTranslation)), ("kvm_irqfd", typeof(KvmIrqfd)), ("kvm_ioeventfd", typeof(KvmIoeventfd)),
        ("kvm_msi", typeof(KvmMsi)), ("kvm_enable_cap", typeof(KvmEnableCap)), ("kvm_dirty_log", typeof(KvmDirtyLog)),
        ("kvm_clock_data", typeof(KvmClockData)), ("kvm_lapic_state", typeof(KvmLapicState)),
        ("kvm_vcpu_events", typeof(KvmVcpuEvents)), ("kvm_debugregs", typeof(KvmDebugRegs)), ("kvm_xsave", typeof(KvmXsave)),
        ("kvm_xcrs", typeof(KvmXcrs)), ("kvm_irqchip", typeof(KvmIrqchip)), ("kvm_pit_state2", typeof(KvmPitState2)),
    ];

    public static TheoryData<string> StructNames() => [.. Structs.Select(s => s.Kernel)];

    [Theory]
    [MemberData(nameof(StructNames))]
    public void StructSizeMatchesKernelHeader(string kernelName)
    {
        var type = Structs.Single(s => s.Kernel == kernelName).Type;
        Assert.Equal(Facts.Value["sizeof " + kernelName], (ulong)SizeOf(type));
    }

    [Theory]
    [MemberData(nameof(StructNames))]
    public void FieldOffsetsMatchKernelHeader(string kernelName)
    {
        var type = Structs.Single(s => s.Kernel == kernelName).Type;
        var fields = type.GetFields(BindingFlags.Public | BindingFlags.Instance)
            .ToDictionary(f => f.Name.ToLowerInvariant(), f => f.Name);
        foreach (var (key, expected) in Facts.Value.Where(f => f.Key.StartsWith($"offsetof {kernelName}.")))
        {
            string kernelField = key[(key.IndexOf('.') + 1)..];
            string lookup = kernelField.Replace("_", "");
            Assert.True(fields.TryGetValue(lookup, out var csField), $"{type.Name} has no field for {kernelName}.{kernelField}");
            Assert.True(expected == (ulong)Marshal.OffsetOf(type, csField).ToInt64(), $"{kernelName}.{kernelField}: kernel {expected}, Kiln {Marshal.OffsetOf(type, csField)}");
        }
    }

    [Fact]
    public void KvmRunOffsetsMatchKernelHeader()
    {
        var f = Facts.Value;
        Check(f, "offsetof kvm_run.immediate_exit", KvmRun.ImmediateExitOffset);
        Check(f, "offsetof kvm_run.exit_reason", KvmRun.ExitReasonOffset);
        Check(f, "offsetof kvm_run.io", KvmRun.UnionOffset);
        Check(f, "union kvm_run.io.direction", KvmRun.IoDirection);
        Check(f, "union kvm_run.io.size", KvmRun.IoSize_);
        Check(f, "union kvm_run.io.port", KvmRun.IoPort_);
        Check(f, "union kvm_run.io.count", KvmRun.IoCount_);
        Check(f, "union kvm_run.io.data_offset", KvmRun.IoDataOffset);
        Check(f, "union kvm_run.mmio.phys_addr", KvmRun.MmioPhysAddr);
        Check(f, "union kvm_run.mmio.data", KvmRun.MmioData_);
        Check(f, "union kvm_run.mmio.len", KvmRun.MmioLen);
        Check(f, "union kvm_run.mmio.is_write", KvmRun.MmioIsWrite_);
        Check(f, "union kvm_run.internal.suberror", KvmRun.InternalSuberror_);
        Check(f, "union kvm_run.internal.ndata", KvmRun.InternalNdata);
        Check(f, "union kvm_run.internal.data", KvmRun.InternalData_);
        Check(f, "union kvm_run.system_event.type", KvmRun.SystemEventType_);
    }

    [Fact]
    public void IoctlNumbersMatchKernelHeader()
    {
        var mismatches = new List<string>();
        foreach (var field in typeof(KvmIoctls).GetFields(BindingFlags.Public | BindingFlags.Static))
        {
            string kernelName = "KVM_" + field.Name switch
            {
                "GetDebugRegs" => "GET_DEBUGREGS",
                "SetDebugRegs" => "SET_DEBUGREGS",
                var n => Snake(n),
            };
            Assert.True(Facts.Value.TryGetValue("ioctl " + kernelName, out ulong expected), $"kvm_abi.c does not print {kernelName}");
            if ((ulong)field.GetValue(null)! != expected)
                mismatches.Add($"{kernelName}: kernel 0x{expected:x}, Kiln 0x{field.GetValue(null):x}");
        }
        Assert.Empty(mismatches);
    }

    [Fact]
    public void CapabilityNumbersMatchKernelHeader()
    {
        foreach (KvmCap cap in Enum.GetValues<KvmCap>())
        {
            string kernelName = "KVM_CAP_" + Snake(cap.ToString());
            Assert.True(Facts.Value.TryGetValue("cap " + kernelName, out ulong expected), $"kvm_abi.c does not print {kernelName}");
            Assert.Equal(expected, (ulong)(int)cap);
        }
    }

    private static void Check(Dictionary<string, ulong> facts, string key, int kiln) =>
        Assert.True(facts[key] == (ulong)kiln, $"{key}: kernel {facts[key]}, Kiln {kiln}");

    private static string Snake(string pascal) =>
        string.Concat(pascal.Select((c, i) => i > 0 && char.IsUpper(c) ? "_" + c : c.ToString())).ToUpperInvariant();

    private static int SizeOf(Type t) =>
        (int)typeof(Unsafe).GetMethod(nameof(Unsafe.SizeOf))!.MakeGenericMethod(t).Invoke(null, null)!;
}
