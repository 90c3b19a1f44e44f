using System.Buffers.Binary;
using System.Text;

namespace Kiln.Vmm.Migration;

/// <summary>Frame reading and writing over a (possibly TLS) stream, with a byte count for the link-rate estimate.
/// Every length read from the peer is checked against a bound before anything is allocated.</summary>
internal sealed class MigrationStream(Stream stream) : IDisposable
{
    /// <summary>Largest payload accepted: a state blob or a batch of pages (virtio queues and CPU state are far
    /// smaller than this).</summary>
    public const int MaxPayload = 64 << 20;

    private readonly BufferedStream _out = new(stream, 1 << 20);
    private readonly byte[] _header = new byte[5];

    public long BytesWritten { get; private set; }
    public Stream Inner => stream;

    public void BeginFrame(MigrationFrame type, int length)
    {
        _header[0] = (byte)type;
        BinaryPrimitives.WriteUInt32LittleEndian(_header.AsSpan(1), (uint)length);
        Write(_header);
    }

    public void Write(ReadOnlySpan<byte> data)
    {
        _out.Write(data);
        BytesWritten += data.Length;
    }

    public void WriteFrame(MigrationFrame type, ReadOnlySpan<byte> payload)
    {
        BeginFrame(type, payload.Length);
        Write(payload);
    }

    public void Flush() => _out.Flush();

    public (MigrationFrame Type, byte[] Payload) ReadFrame()
    {
        ReadExactly(_header);
        var type = (MigrationFrame)_header[0];
        uint length = BinaryPrimitives.ReadUInt32LittleEndian(_header.AsSpan(1));
        if (length > MaxPayload)
            throw new MigrationException($"the peer sent a {type} frame of {length:N0} bytes (limit {MaxPayload:N0})");
        var payload = new byte[length];
        ReadExactly(payload);
        if (type == MigrationFrame.Abort)
            throw new MigrationException($"the peer aborted: {Encoding.UTF8.GetString(payload)}");
        return (type, payload);
    }

    /// <summary>Like <see cref="ReadFrame"/>, but into a buffer reused across frames (grown when needed), so a
    /// stream of page batches does not churn the large-object heap.</summary>
    public (MigrationFrame Type, ReadOnlyMemory<byte> Payload) ReadFrameInto(ref byte[] buffer)
    {
        ReadExactly(_header);
        var type = (MigrationFrame)_header[0];
        uint length = BinaryPrimitives.ReadUInt32LittleEndian(_header.AsSpan(1));
        if (length > MaxPayload)
            throw new MigrationException($"the peer sent a {type} frame of {length:N0} bytes (limit {MaxPayload:N0})");
        if (buffer.Length < length)
            buffer = new byte[length];
        ReadExactly(buffer.AsSpan(0, (int)length));
        if (type == MigrationFrame.Abort)
            throw new MigrationException($"the peer aborted: {Encoding.UTF8.GetString(buffer, 0, (int)length)}");
        return (type, buffer.AsMemory(0, (int)length));
    }

    /// <summary>Reads a frame and insists on its type.</summary>
    public byte[] Expect(MigrationFrame type)
    {
        var (got, payload) = ReadFrame();
        if (got != type)
            throw new MigrationException($"protocol error: expected {type}, got {got}");
        return payload;
    }

    public void ReadExactly(Span<byte> buffer)
    {
        try
        {
            stream.ReadExactly(buffer);
        }
        catch (EndOfStreamException e)
        {
            throw new MigrationException("the peer closed the migration stream", e);
        }
    }

    /// <summary>Best effort: tells the peer why we give up; the connection may already be gone.</summary>
    public void TrySendAbort(string reason)
    {
        try
        {
            WriteFrame(MigrationFrame.Abort, Encoding.UTF8.GetBytes(reason));
            Flush();
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or System.Net.Sockets.SocketException
                                       or NotSupportedException or InvalidOperationException)
        {
        }
    }

    public void Dispose()
    {
        try
        {
            _out.Dispose(); // flushes: on a dead link that fails, which must not escape a Dispose
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or System.Net.Sockets.SocketException
                                       or NotSupportedException)
        {
        }
        stream.Dispose();
    }
}
