namespace Kiln.Memory;

/// <summary>A guest-physical address. Arithmetic is checked so an overflow is an error, not a wrap.</summary>
public readonly record struct GuestAddress(ulong Value) : IComparable<GuestAddress>
{
    public static GuestAddress operator +(GuestAddress a, ulong offset) => new(checked(a.Value + offset));

    public static ulong operator -(GuestAddress a, GuestAddress b) => checked(a.Value - b.Value);

    public static bool operator <(GuestAddress a, GuestAddress b) => a.Value < b.Value;
    public static bool operator >(GuestAddress a, GuestAddress b) => a.Value > b.Value;
    public static bool operator <=(GuestAddress a, GuestAddress b) => a.Value <= b.Value;
    public static bool operator >=(GuestAddress a, GuestAddress b) => a.Value >= b.Value;

    public int CompareTo(GuestAddress other) => Value.CompareTo(other.Value);

    public override string ToString() => $"0x{Value:x}";
}
