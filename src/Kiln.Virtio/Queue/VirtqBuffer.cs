using Kiln.Memory;

namespace Kiln.Virtio.Queue;

/// <summary>One validated descriptor: [Address, Address+Length) lies in guest RAM and Length is non-zero.</summary>
public readonly record struct VirtqBuffer(GuestAddress Address, uint Length, bool IsWritable);
