using System.Text;
using Kiln.Memory;

namespace Kiln.Tests.Boot;

/// <summary>Guest RAM laid out like the VMM does it, and readers for what the loaders wrote.</summary>
internal static class TestMemory
{
    public const ulong MiB = 1 << 20;
    public const ulong GiB = 1 << 30;

    public static GuestMemory Create(ulong bytes) => GuestMemory.Create(X86MemoryLayout.RamRegions(bytes));

    public static uint U32(this GuestMemory m, ulong address) => m.Read<uint>(new GuestAddress(address));
    public static ushort U16(this GuestMemory m, ulong address) => m.Read<ushort>(new GuestAddress(address));
    public static ulong U64(this GuestMemory m, ulong address) => m.Read<ulong>(new GuestAddress(address));
    public static byte U8(this GuestMemory m, ulong address) => m.Read<byte>(new GuestAddress(address));

    public static byte[] Bytes(this GuestMemory m, ulong address, int length)
    {
        var bytes = new byte[length];
        m.Read(new GuestAddress(address), bytes);
        return bytes;
    }

    /// <summary>The NUL-terminated string at <paramref name="address"/>.</summary>
    public static string CString(this GuestMemory m, ulong address, int max = 8192)
    {
        var bytes = new List<byte>();
        for (ulong a = address; bytes.Count < max; a++)
        {
            byte b = m.U8(a);
            if (b == 0)
                return Encoding.UTF8.GetString(bytes.ToArray());
            bytes.Add(b);
        }
        throw new InvalidOperationException($"no NUL within {max} bytes at 0x{address:x}");
    }

    public static (ulong Address, ulong Size, uint Type) E820At(this GuestMemory m, ulong address) =>
        (m.U64(address), m.U64(address + 8), m.U32(address + 16));
}
