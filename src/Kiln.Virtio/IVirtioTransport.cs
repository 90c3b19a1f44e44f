namespace Kiln.Virtio;

/// <summary>What a device asks of its transport: interrupt the driver. Implemented by the MMIO and PCI transports.</summary>
internal interface IVirtioTransport
{
    /// <summary>A used-buffer notification for one queue.</summary>
    void SignalQueue(int queueIndex);

    /// <summary>A configuration-change notification (also sent when the device enters DEVICE_NEEDS_RESET).</summary>
    void SignalConfigChange();
}
