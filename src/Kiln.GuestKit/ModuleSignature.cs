using System.Buffers.Binary;
using System.Text;

namespace Kiln.GuestKit;

/// <summary>The signature a kernel module carries at its end: the module, a PKCS#7 signature, a 12-byte struct
/// module_signature (its last field the signature's big-endian length) and the text "~Module signature appended~\n".
/// The stock kit stores modules without it: the kernel (module.sig_enforce off, as on a machine without Secure Boot)
/// then loads them unchecked and marks itself tainted, instead of hashing each module with SHA-256 and checking an
/// RSA signature, which took emulated ring 0 tens of seconds for ext4 alone.</summary>
public static class ModuleSignature
{
    private static readonly byte[] Marker = Encoding.ASCII.GetBytes("~Module signature appended~\n");
    private const int InfoSize = 12; // struct module_signature: algo, hash, id_type, signer_len, key_id_len, pad[3], sig_len

    /// <summary>MODULE without its signature; MODULE itself when it has none. A marker whose lengths do not fit the
    /// file is an error (a damaged module should not reach the guest).</summary>
    public static byte[] Strip(byte[] module)
    {
        if (module.Length < Marker.Length || !module.AsSpan(module.Length - Marker.Length).SequenceEqual(Marker))
            return module;
        int infoStart = module.Length - Marker.Length - InfoSize;
        if (infoStart < 0)
            throw new GuestKitException("module signature marker without its signature information");
        var info = module.AsSpan(infoStart, InfoSize);
        long signed = (long)infoStart - BinaryPrimitives.ReadUInt32BigEndian(info[8..]) - info[3] - info[4];
        if (signed <= 0)
            throw new GuestKitException("module signature longer than the module");
        return module.AsSpan(0, (int)signed).ToArray();
    }
}
