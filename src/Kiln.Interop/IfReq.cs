using System.Runtime.InteropServices;
using System.Text;

namespace Kiln.Interop;

/// <summary>net/if.h struct ifreq (40 bytes on x86-64): the interface name, then a union of which Kiln uses
/// ifr_flags (short) and ifr_ifindex (int), both at offset 16.</summary>
[StructLayout(LayoutKind.Explicit, Size = 40)]
public unsafe struct IfReq
{
    public const int NameSize = 16; // IFNAMSIZ, including the NUL

    [FieldOffset(0)] private fixed byte _name[NameSize];
    [FieldOffset(16)] public short Flags;
    [FieldOffset(16)] public int Index;

    /// <summary>An ifreq for <paramref name="name"/>: 1 to 15 ASCII bytes without '/', ':' or whitespace.</summary>
    public static IfReq Create(string name)
    {
        if (!IsValidName(name))
            throw new ArgumentException($"invalid network interface name '{name}' (1-15 characters, no '/', ':' or spaces)", nameof(name));
        var req = new IfReq();
        Encoding.ASCII.GetBytes(name, new Span<byte>(req._name, NameSize));
        return req;
    }

    public static bool IsValidName(string name) =>
        name.Length is > 0 and < NameSize && name != "." && name != ".."
        && name.All(c => c > ' ' && c < 0x7f && c != '/' && c != ':');
}
