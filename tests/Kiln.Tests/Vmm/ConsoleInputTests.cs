using Kiln.Vmm.Console;

namespace Kiln.Tests.Vmm;

public sealed class ConsoleInputTests
{
    private sealed class Harness
    {
        public int Quits;
        public List<string> Printed = [];
        public ConsoleInput Input;

        public Harness() => Input = new ConsoleInput(-1, () => Quits++, Printed.Add);
    }

    [Fact]
    public void CtrlAXQuits()
    {
        var h = new Harness();
        h.Input.HandleByte(0x01);
        h.Input.HandleByte((byte)'x');
        Assert.Equal(1, h.Quits);
    }

    [Fact]
    public void CtrlAHPrintsHelpAndOtherKeysDoNotQuit()
    {
        var h = new Harness();
        foreach (byte b in "ab\u0001h\u0001z\u0001\u0001x"u8.ToArray())
            h.Input.HandleByte(b);
        Assert.Equal(0, h.Quits); // the x after C-a C-a is ordinary input
        Assert.Single(h.Printed);
        Assert.Contains("C-a x", h.Printed[0]);
    }
}
