namespace Kiln.GuestKit;

/// <summary>An exclusive lock on a kit directory (flock through FileShare.None), so two builds of the same kit do not
/// delete each other's scratch tree; the second waits and then finds the first one's result.</summary>
public static class BuildLock
{
    public static IDisposable Acquire(string dir, Action<string> say)
    {
        string path = Path.Combine(dir, ".lock");
        bool told = false;
        while (true)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (File.Exists(path))
            {
                if (!told)
                    say($"guest-kit: another build of {dir} is running; waiting for it");
                told = true;
                Thread.Sleep(2000);
            }
        }
    }
}
