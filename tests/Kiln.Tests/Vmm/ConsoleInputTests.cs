using Kiln.Devices;
using Kiln.Devices.Legacy;
using Kiln.Vmm.Console;

namespace Kiln.Tests.Vmm;

public sealed class ConsoleInputTests
{
    private sealed class NoIrq : IInterruptLine
    {
        public void Set(bool high)
        {
        }
    }

    private sealed class Harness
    {
        public int Quits;
        public List<string> Printed = [];
        public ConsoleInput Input;
        public Serial8250 Uart = new(Serial8250.Com1Base, new NoIrq(), null);

        public Harness()
        {
            Uart.Write(2, [0x01]); // FCR: FIFOs on, so the UART holds what the test sends
            Input = new ConsoleInput(-1, () => Quits++, Printed.Add) { Target = Uart };
        }

        public string Received()
        {
            var bytes = new List<byte>();
            var lsr = new byte[1];
            var rbr = new byte[1];
            for (Uart.Read(5, lsr); (lsr[0] & 1) != 0; Uart.Read(5, lsr))
            {
                Uart.Read(0, rbr);
                bytes.Add(rbr[0]);
            }
            return string.Concat(bytes.Select(b => b < 32 ? $"^{(char)(b + 64)}" : ((char)b).ToString()));
        }
    }

    [Fact]
    public void CtrlAXQuits()
    {
        var h = new Harness();
        h.Input.HandleByte(0x01);
        h.Input.HandleByte((byte)'x');
        Assert.Equal(1, h.Quits);
        Assert.Equal("", h.Received());
    }

    [Fact]
    public void EscapesAreConsumedAndEverythingElseReachesTheUart()
    {
        var h = new Harness();
        foreach (byte b in "ab\u0001h\u0001z\u0001\u0001x"u8.ToArray())
            h.Input.HandleByte(b);
        Assert.Equal(0, h.Quits); // the x after C-a C-a is ordinary input
        Assert.Single(h.Printed);
        Assert.Contains("C-a x", h.Printed[0]);
        Assert.Equal("ab^Ax", h.Received());
    }
}
