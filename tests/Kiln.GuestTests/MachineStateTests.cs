using Kiln.Contracts.Spec;
using System.Text;
using Kiln.Devices.Legacy;
using Kiln.Devices.State;
using Kiln.GuestTests.Support;
using Kiln.Vmm;

namespace Kiln.GuestTests;

/// <summary>Machine state (vCPUs, irqchip, PIT, clock, devices) saved from a running guest and restored into a
/// fresh machine lets the guest finish its work there: the proof that the state is complete.</summary>
public sealed class MachineStateTests
{
    private sealed class CapturedOutput : ISerialOutput
    {
        private readonly StringBuilder _text = new();

        public void Write(byte b)
        {
            lock (_text)
                _text.Append((char)b);
        }

        public string Text
        {
            get
            {
                lock (_text)
                    return _text.ToString();
            }
        }
    }

    private static VmSpec Config => new()
    {
        Boot = new BootSpec { Kernel = TestGuest.Path, CommandLine = "test=pio count=150000 port=0x80" },
        Machine = new MachineSpec { MemoryBytes = 64UL << 20 },
    };

    [KvmFact]
    public void StateSavedMidRunRestoresIntoAFreshMachine()
    {
        using var kvm = global::Kiln.Kvm.Kvm.Open();
        var cpuid = kvm.GetSupportedCpuid();
        Interop.Threads.InstallKickHandler();

        var outA = new CapturedOutput();
        byte[] state;
        byte[][] ram;
        using (var a = Machine.Create(Config, kvm, cpuid, outA))
        {
            a.Resume();
            var deadline = DateTime.UtcNow.AddSeconds(20);
            while (!outA.Text.Contains("pio start") && DateTime.UtcNow < deadline)
                Thread.Sleep(10);
            Thread.Sleep(300);
            a.Pause();
            Assert.False(a.IsStopping, "the guest finished before it could be paused: " + outA.Text);
            Assert.DoesNotContain("pio done", outA.Text);
            state = a.SaveState();
            ram = a.Memory.Regions.Select(r => a.Memory.GetSpan(r.Start, (int)r.Size).ToArray()).ToArray();
        }

        var outB = new CapturedOutput();
        using var b = Machine.CreateForRestore(Config, kvm, cpuid, outB);
        b.RestoreState(state);
        for (int i = 0; i < ram.Length; i++)
            b.Memory.Write(b.Memory.Regions[i].Start, ram[i]);
        var exit = b.Run();

        Assert.Equal(MachineExitKind.DebugExit, exit.Kind);
        Assert.Equal(1, exit.ExitCode);
        Assert.Contains("pio done 150000", outB.Text);
        Assert.DoesNotContain("pio start", outB.Text); // it continued; it did not boot again
    }

    [KvmFact]
    public void CorruptStateIsRefusedWithAClearError()
    {
        using var kvm = global::Kiln.Kvm.Kvm.Open();
        var cpuid = kvm.GetSupportedCpuid();
        using var m = Machine.Create(Config, kvm, cpuid, new CapturedOutput());
        Assert.Throws<StateFormatException>(() => m.RestoreState("garbage"u8.ToArray()));
        var good = m.SaveState();
        Assert.Throws<StateFormatException>(() => m.RestoreState(good[..(good.Length / 2)]));
    }
}
