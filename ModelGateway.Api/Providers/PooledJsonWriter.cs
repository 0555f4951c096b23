using System.Buffers;
using System.Text.Encodings.Web;
using System.Text.Json;
using Microsoft.Extensions.ObjectPool;

namespace ModelGateway.Api.Providers;

/// <summary>
/// A <see cref="Utf8JsonWriter"/> over a reused buffer, for a body that is written synchronously and copied out once (an
/// upstream request, a translated answer). Every request used to allocate its own growing buffer and writer and then copy
/// the written bytes out of it; now only the copy is allocated. Writers and buffers come from an <see cref="ObjectPool{T}"/>;
/// a buffer that grew past <see cref="MaxRetainedBytes"/> is dropped on return, so one huge body does not stay pinned.
/// </summary>
/// <example><code>
/// using var body = PooledJsonWriter.Rent(relaxedEscaping: true);
/// body.Writer.WriteStartObject(); ... body.Writer.WriteEndObject();
/// return body.ToArray();
/// </code></example>
internal readonly ref struct PooledJsonWriter
{
    /// <summary>Buffers larger than this are not kept for the next body.</summary>
    internal const int MaxRetainedBytes = 64 * 1024;

    /// <summary>
    /// JSON's own escaping only, for JSON the gateway writes for API clients and providers (translated answers and chunks,
    /// request bodies): never embedded in HTML, so non-ASCII text keeps its UTF-8 size instead of six bytes per \uXXXX.
    /// </summary>
    internal static readonly JsonWriterOptions RelaxedOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static readonly ObjectPool<Scratch> Relaxed = new DefaultObjectPool<Scratch>(new Policy(RelaxedOptions));

    private static readonly ObjectPool<Scratch> Default = new DefaultObjectPool<Scratch>(new Policy(default));

    private readonly Scratch _scratch;
    private readonly ObjectPool<Scratch> _pool;

    private PooledJsonWriter(ObjectPool<Scratch> pool)
    {
        _pool = pool;
        _scratch = pool.Get();
    }

    /// <summary>
    /// A writer with <see cref="JavaScriptEncoder.UnsafeRelaxedJsonEscaping"/> when <paramref name="relaxedEscaping"/> (text
    /// written by the gateway), else the default encoder (the OpenAI-compatible path, which re-serialises the client's body as
    /// System.Text.Json always has).
    /// </summary>
    public static PooledJsonWriter Rent(bool relaxedEscaping) => new(relaxedEscaping ? Relaxed : Default);

    public Utf8JsonWriter Writer => _scratch.Writer;

    /// <summary>Flushes the writer and copies what it wrote into an array of exactly that size.</summary>
    public byte[] ToArray()
    {
        _scratch.Writer.Flush();
        return _scratch.Buffer.WrittenSpan.ToArray();
    }

    public void Dispose() => _pool.Return(_scratch);

    private sealed class Scratch
    {
        public Scratch(JsonWriterOptions options)
        {
            Buffer = new ArrayBufferWriter<byte>(1024);
            Writer = new Utf8JsonWriter(Buffer, options);
        }

        public ArrayBufferWriter<byte> Buffer { get; }

        public Utf8JsonWriter Writer { get; }
    }

    private sealed class Policy(JsonWriterOptions options) : IPooledObjectPolicy<Scratch>
    {
        public Scratch Create() => new(options);

        public bool Return(Scratch scratch)
        {
            if (scratch.Buffer.Capacity > MaxRetainedBytes)
            {
                return false;
            }
            // Reset drops anything a writer abandoned mid-body (an exception while writing) along with its depth.
            scratch.Buffer.ResetWrittenCount();
            scratch.Writer.Reset(scratch.Buffer);
            return true;
        }
    }
}
