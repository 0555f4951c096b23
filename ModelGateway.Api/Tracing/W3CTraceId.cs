using System.Buffers.Binary;
using System.Diagnostics;

namespace ModelGateway.Api.Tracing;

/// <summary>
/// A request's W3C trace id (16 bytes) as a value. The trace record and the ledger row keep it this way, not as the
/// activity's hex string: they wait in the writers' buffers for a batch, and a string they pointed to was promoted with them
/// whenever the store was slow, so a backlog left gen2, and the memory committed for it, several MB larger
/// (docs/benchmark.md, session 21). The text is made when the batch is written.
/// </summary>
internal readonly record struct W3CTraceId(ulong High, ulong Low)
{
    /// <summary>The request's trace id: its activity's, or (no activity: tracing is off) one drawn for it once and kept.</summary>
    public static W3CTraceId Of(HttpContext context)
    {
        if (Activity.Current is { } activity)
        {
            return From(activity.TraceId);
        }
        if (context.Features.Get<Drawn>() is { } drawn)
        {
            return drawn.Id;
        }
        var id = From(ActivityTraceId.CreateRandom());
        context.Features.Set(new Drawn(id));
        return id;
    }

    /// <summary>The text of <see cref="Of"/>: the activity's own string when there is one (nothing is allocated).</summary>
    public static string TextOf(HttpContext context) => Activity.Current?.TraceId.ToHexString() ?? Of(context).ToString();

    public static W3CTraceId From(ActivityTraceId id)
    {
        Span<byte> bytes = stackalloc byte[16];
        id.CopyTo(bytes);
        return new(BinaryPrimitives.ReadUInt64BigEndian(bytes), BinaryPrimitives.ReadUInt64BigEndian(bytes[8..]));
    }

    /// <summary>From 32 lowercase hex digits, not all zero (as <see cref="ActivityTraceId.CreateFromString(ReadOnlySpan{char})"/>).</summary>
    public static W3CTraceId Parse(string hex) => From(ActivityTraceId.CreateFromString(hex));

    /// <summary>32 lowercase hex digits, as W3C trace context writes it.</summary>
    public override string ToString() => string.Create(32, this, static (chars, id) =>
    {
        Span<byte> bytes = stackalloc byte[16];
        BinaryPrimitives.WriteUInt64BigEndian(bytes, id.High);
        BinaryPrimitives.WriteUInt64BigEndian(bytes[8..], id.Low);
        Convert.TryToHexStringLower(bytes, chars, out _);
    });

    private sealed record Drawn(W3CTraceId Id);
}
