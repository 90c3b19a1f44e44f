using System.Text;
using Kiln.Memory;

namespace Kiln.Boot;

/// <summary>Places the command line at <see cref="BootLayout.CommandLineAddress"/>, NUL terminated.</summary>
internal static class KernelCommandLine
{
    /// <summary>Writes the line after checking it against <paramref name="maxLength"/> (bytes, excluding the NUL);
    /// returns its guest address.</summary>
    public static ulong Write(GuestMemory memory, BootFile kernel, string commandLine, ulong maxLength, string limitName)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(commandLine);
        if (bytes.Contains((byte)0))
            throw kernel.Fail("the command line contains a NUL character");
        ulong areaLimit = BootLayout.CommandLineAreaEnd - BootLayout.CommandLineAddress - 1;
        ulong limit = Math.Min(maxLength, areaLimit);
        if ((ulong)bytes.Length > limit)
            throw kernel.Fail($"the command line is {bytes.Length} bytes but the kernel accepts at most {limit} ({limitName})");
        var address = new GuestAddress(BootLayout.CommandLineAddress);
        memory.Write(address, bytes);
        memory.Write<byte>(address + (ulong)bytes.Length, 0);
        return address.Value;
    }
}
