using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;
using Kiln.Interop;
using Kiln.Memory;

namespace Kiln.Vmm.Migration;

/// <summary>Frame reading and writing over a (possibly TLS) stream, with a byte count for the link-rate estimate.
/// Every length read from the peer is checked against a bound before anything is allocated. On a plain TCP link
/// guest pages go by writev straight from guest RAM and arrive by readv straight into it (no user-space copy on
/// either side); over TLS they pass through the stream.</summary>
internal sealed class MigrationStream(Stream stream) : IDisposable
{
    /// <summary>Largest payload accepted: a state blob or a batch of pages (virtio queues and CPU state are far
    /// smaller than this).</summary>
    public const int MaxPayload = 64 << 20;

    private readonly BufferedStream _out = new(stream, 1 << 20);
    private readonly byte[] _header = new byte[5];
    /// <summary>The plain TCP socket under the stream (null over TLS, or in tests over a memory stream).</summary>
    private readonly Socket? _socket = (stream as NetworkStream)?.Socket;

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

    /// <summary>Reads a frame's type and payload length (bounded by <see cref="MaxPayload"/>); the caller reads the
    /// payload.</summary>
    public (MigrationFrame Type, int Length) ReadHeader()
    {
        ReadExactly(_header);
        var type = (MigrationFrame)_header[0];
        uint length = BinaryPrimitives.ReadUInt32LittleEndian(_header.AsSpan(1));
        if (length > MaxPayload)
            throw new MigrationException($"the peer sent a {type} frame of {length:N0} bytes (limit {MaxPayload:N0})");
        return (type, (int)length);
    }

    public (MigrationFrame Type, byte[] Payload) ReadFrame()
    {
        var (type, length) = ReadHeader();
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
        var (type, length) = ReadHeader();
        return (type, ReadPayloadInto(type, length, ref buffer));
    }

    /// <summary>The payload of a frame whose header <see cref="ReadHeader"/> returned, into a reused buffer.</summary>
    public ReadOnlyMemory<byte> ReadPayloadInto(MigrationFrame type, int length, ref byte[] buffer)
    {
        if (buffer.Length < length)
            buffer = new byte[length];
        ReadExactly(buffer.AsSpan(0, length));
        if (type == MigrationFrame.Abort)
            throw new MigrationException($"the peer aborted: {Encoding.UTF8.GetString(buffer, 0, length)}");
        return buffer.AsMemory(0, length);
    }

    /// <summary>Writes the guest pages at <paramref name="addresses"/> (each a page of RAM) after what is buffered.
    /// The guest may be running: a page that changes while it is copied is dirty again in the log and goes again.</summary>
    public void WritePages(GuestMemory memory, ReadOnlySpan<ulong> addresses, int pageSize)
    {
        if (_socket is null)
        {
            foreach (ulong address in addresses)
                Write(memory.GetSpan(new GuestAddress(address), pageSize));
            return;
        }
        _out.Flush();
        try
        {
            GuestPageIo.Write(memory, (int)_socket.Handle, addresses, pageSize, _socket.SendTimeout);
        }
        catch (Exception e) when (e is EndOfStreamException or TimeoutException or SystemCallException)
        {
            throw Rephrased(e, write: true);
        }
        BytesWritten += (long)addresses.Length * pageSize;
    }

    /// <summary>Fills the guest pages at <paramref name="addresses"/> (each already checked to be a page of RAM)
    /// from the stream, in order.</summary>
    public void ReadPages(GuestMemory memory, ReadOnlySpan<ulong> addresses, int pageSize)
    {
        if (_socket is null)
        {
            foreach (ulong address in addresses)
                ReadExactly(memory.GetSpan(new GuestAddress(address), pageSize));
            return;
        }
        try
        {
            GuestPageIo.Read(memory, (int)_socket.Handle, addresses, pageSize, _socket.ReceiveTimeout);
        }
        catch (Exception e) when (e is EndOfStreamException or TimeoutException or SystemCallException)
        {
            throw Rephrased(e, write: false);
        }
    }

    /// <summary>A vectored transfer's failure, phrased as the stream's would be.</summary>
    private static Exception Rephrased(Exception e, bool write) => e switch
    {
        EndOfStreamException => new MigrationException("the peer closed the migration stream", e),
        TimeoutException => new IOException($"the migration link stalled: nothing could {(write ? "be sent" : "be received")} within the I/O timeout", e),
        _ => new IOException(e.Message, e),
    };

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
