using Kiln.Contracts.Spec;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using Kiln.Devices.Legacy;
using Kiln.Devices.State;
using Kiln.Kvm;
using Kiln.Memory;

namespace Kiln.Vmm.Migration;

/// <summary>The receiving side of a live migration (<c>kiln run --incoming tcp:ADDR:PORT</c>). It listens from
/// construction on, so the port is known before the source connects; <see cref="Receive"/> is the runner's
/// first-machine factory: it accepts one authenticated source, builds a machine of the configured shape, fills its
/// RAM and state from the stream, answers Ready, and on Go returns the machine for the runner to start; the
/// Resumed answer goes out once the vCPUs run. Any failure before Go disposes the half-built machine and throws,
/// so the VMM exits and leaves nothing behind; after Go the guest runs here even if Resumed cannot be sent (the
/// source then stays paused, never resumes on its own).</summary>
public sealed class IncomingMigration : IDisposable
{
    private readonly Socket _listener;
    private readonly string _token;
    private readonly X509Certificate2? _certificate;

    public IncomingMigration(MigrationEndpoint listen, string token, X509Certificate2? certificate)
    {
        if (token.Length == 0)
            throw new MigrationException("the incoming migration needs a token");
        _token = token;
        _certificate = certificate;
        var endPoint = listen.ListenEndPoint();
        _listener = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            _listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            _listener.Bind(endPoint);
            _listener.Listen(1);
        }
        catch (SocketException e)
        {
            _listener.Dispose();
            throw new MigrationException($"cannot listen on {listen}: {e.Message}", e);
        }
    }

    public int Port => ((System.Net.IPEndPoint)_listener.LocalEndPoint!).Port;

    public TimeSpan AcceptTimeout { get; init; } = TimeSpan.FromSeconds(120);
    public TimeSpan IoTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Test hook (<c>KILN_TEST_MIGRATION_DROP_LINK_AFTER_GO=1</c>): close the link right after Go, so the
    /// source never hears Resumed. The guest still runs here; the source must stay paused.</summary>
    public bool DropLinkAfterGo { get; init; } =
        Environment.GetEnvironmentVariable("KILN_TEST_MIGRATION_DROP_LINK_AFTER_GO") == "1";

    /// <summary>Set once the guest runs here: the time from the source's state arriving to our vCPUs running.</summary>
    public TimeSpan? LocalDowntime { get; private set; }
    public long BytesReceived { get; private set; }

    public Machine Receive(VmSpec config, Kvm.Kvm kvm, KvmCpuidEntry2[] supportedCpuid, ISerialOutput console)
    {
        StateCodeWarmUp.Run(config, kvm, supportedCpuid);
        var stream = MigrationConnection.Accept(_listener, _token, _certificate, AcceptTimeout, IoTimeout);
        _listener.Dispose(); // one source only
        Machine? machine = null;
        DiskReceiver? disks = null;
        try
        {
            var hello = stream.Expect(MigrationFrame.Hello);
            CheckHello(hello, config);
            SpecHandshake.Check(stream.Expect(MigrationFrame.Spec), config);
            disks = DiskReceiver.Prepare(hello.AsSpan(16), config); // copy-storage: before the machine opens the disks
            machine = Machine.CreateForRestore(config, kvm, supportedCpuid, console);
            disks?.Attach(machine);
            var local = new Stopwatch();
            byte[] buffer = new byte[1 << 20];
            var scratch = new PageFrame.Scratch();
            while (true)
            {
                var (type, length) = stream.ReadHeader();
                BytesReceived += length + 5;
                if (type == MigrationFrame.Pages)
                {
                    disks?.FlushIfWritten(); // a round's disk blocks are complete: made durable now, not in the downtime
                    PageFrame.Receive(stream, length, machine.Memory, scratch);
                    continue;
                }
                var payload = stream.ReadPayloadInto(type, length, ref buffer);
                if (type == MigrationFrame.DiskBlocks)
                {
                    (disks ?? throw new MigrationException("protocol error: disk blocks without a disk table")).Apply(payload.Span);
                    continue;
                }
                if (type == MigrationFrame.Sync)
                {
                    // Everything before it is applied: the source may now measure the round and decide to pause.
                    stream.WriteFrame(MigrationFrame.Synced, []);
                    stream.Flush();
                    continue;
                }
                if (type != MigrationFrame.State)
                    throw new MigrationException($"protocol error: expected Pages or State, got {type}");
                local.Start();
                machine.RestoreState(payload.ToArray());
                break;
            }
            disks?.Flush();
            stream.WriteFrame(MigrationFrame.Ready, []);
            stream.Flush();
            stream.Expect(MigrationFrame.Go);
            if (DropLinkAfterGo)
                stream.Inner.Dispose(); // test hook: the link dies between Go and Resumed
            var restored = machine;
            void OnResumed()
            {
                restored.Resumed -= OnResumed;
                LocalDowntime = local.Elapsed;
                try
                {
                    stream.WriteFrame(MigrationFrame.Resumed, []);
                    stream.Flush();
                    KilnLog.Info($"incoming migration complete: {BytesReceived / 1e6:0.0} MB received, " +
                                 $"state to running in {LocalDowntime.Value.TotalMilliseconds:0.0} ms");
                }
                catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException
                                               or NotSupportedException)
                {
                    // After Go the guest is ours: the source stays paused when it hears nothing, so this copy runs on.
                    KilnLog.Warn($"incoming migration: the guest runs here, but the source did not hear so " +
                                 $"({e.Message}); it stays paused with the outcome unknown");
                }
                finally
                {
                    stream.Dispose();
                }
            }
            machine.Resumed += OnResumed;
            return machine;
        }
        catch (Exception e)
        {
            // The stream carries state a guest shaped (its device registers, queue positions): whatever restoring it
            // throws ends this migration with one clear line, as a broken link does.
            string reason = e is MigrationException ? e.Message
                : e is IOException or SocketException or GuestMemoryException or StateFormatException or KvmException
                    ? $"incoming migration failed: {e.Message}"
                    : $"incoming migration failed: {e.GetType().Name}: {e.Message}";
            stream.TrySendAbort(reason);
            stream.Dispose();
            machine?.Dispose();
            disks?.RemoveCreated();
            throw new MigrationException(reason, e);
        }
    }

    private static void CheckHello(byte[] hello, VmSpec config)
    {
        if (hello.Length < 16)
            throw new MigrationException("protocol error: short Hello");
        uint version = BinaryPrimitives.ReadUInt32LittleEndian(hello);
        ulong memory = BinaryPrimitives.ReadUInt64LittleEndian(hello.AsSpan(4));
        uint cpus = BinaryPrimitives.ReadUInt32LittleEndian(hello.AsSpan(12));
        if (version != MigrationSource.ProtocolVersion)
            throw new MigrationException($"the source speaks migration protocol {version}, this VMM {MigrationSource.ProtocolVersion}");
        if (memory != config.Machine.MemoryBytes || cpus != config.Machine.Cpus)
            throw new MigrationException(
                $"the source's guest has {memory >> 20} MiB and {cpus} vCPUs, this VMM was started with " +
                $"{config.Machine.MemoryBytes >> 20} MiB and {config.Machine.Cpus}");
    }

    public void Dispose() => _listener.Dispose();
}
