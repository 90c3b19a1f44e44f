namespace Kiln.Boot;

internal static class Align
{
    public const ulong Page = 4096;

    public static ulong Down(ulong value, ulong alignment) => value & ~(alignment - 1);

    /// <summary>Rounds up; checked so an address near 2^64 is an error rather than a wrap to 0.</summary>
    public static ulong Up(ulong value, ulong alignment) => checked(value + alignment - 1) & ~(alignment - 1);
}
