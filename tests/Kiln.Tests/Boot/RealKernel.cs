namespace Kiln.Tests.Boot;

/// <summary>The host's Debian kernel, the real-world bzImage the loader is tested against.</summary>
internal static class RealKernel
{
    public static string Path
    {
        get
        {
            var candidates = Directory.Exists("/boot") ? Directory.GetFiles("/boot", "vmlinuz-*") : [];
            if (candidates.Length == 0)
                Assert.Fail("no /boot/vmlinuz-* on this machine: install a kernel image (apt-get install linux-image-amd64)");
            return candidates.OrderBy(p => p, StringComparer.Ordinal).Last();
        }
    }

    public static byte[] Bytes
    {
        get
        {
            string path = Path;
            try
            {
                return File.ReadAllBytes(path);
            }
            catch (UnauthorizedAccessException)
            {
                Assert.Fail($"{path} is not readable by this user: make it readable (chmod a+r) or run as root");
                throw;
            }
        }
    }
}
