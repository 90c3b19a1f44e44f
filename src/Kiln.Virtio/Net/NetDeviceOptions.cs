namespace Kiln.Virtio.Net;

/// <summary>A virtio-net NIC's backend: the TAP interface (created if missing), its MAC (null: derived from the TAP
/// name) and the bridge to add the TAP to. Parsing user syntax is the front ends' job, not the device's.</summary>
public sealed record NetDeviceOptions(string Tap, MacAddress? Mac = null, string? Bridge = null);
