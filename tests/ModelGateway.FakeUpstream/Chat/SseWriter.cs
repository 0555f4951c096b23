using System.Buffers;
using System.IO.Pipelines;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;
using ModelGateway.FakeUpstream.Faults;

namespace ModelGateway.FakeUpstream.Chat;

/// <summary>
/// Writes Server-Sent Events (<c>event: NAME\n</c> optional, <c>data: JSON\n\n</c>), flushing each event
/// as soon as it is written so clients see chunks as they are produced, never buffered. The streaming
/// faults live here, in one place for all protocols: delays between events (fault-slow-chunks),
/// aborting after N content chunks (fault-cut-stream), a broken event after 2 (fault-malformed-chunk), and the same delays
/// with each text chunk stamped with when the request arrived and when the chunk was written (fault-stamped-chunks, for
/// bench/StreamProbe: what a proxy adds, without the delays' own timer jitter).
/// Usage: <c>var json = await BeginAsync(name)</c>, write one JSON value, <c>await EndAsync(...)</c>.
/// </summary>
internal sealed class SseWriter : IDisposable
{
    private static readonly TimeSpan CutGrace = TimeSpan.FromMilliseconds(100);

    private readonly HttpContext _context;
    private readonly PipeWriter _pipe;
    private readonly Utf8JsonWriter _json;
    private readonly Fault _fault;
    private readonly TimeProvider _time;
    private readonly ReadOnlyMemory<byte> _malformedEvent;
    private readonly long _received;
    private int _events;
    private int _contentChunks;
    private bool _malformedSent;

    public SseWriter(HttpContext context, Fault fault, TimeProvider time, ReadOnlyMemory<byte> malformedEvent, long received)
    {
        _received = received;
        _context = context;
        _pipe = context.Response.BodyWriter;
        _json = new Utf8JsonWriter(_pipe, JsonBody.WriterOptions);
        _fault = fault;
        _time = time;
        _malformedEvent = malformedEvent;
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
    }

    private CancellationToken Aborted => _context.RequestAborted;

    public async ValueTask<Utf8JsonWriter> BeginAsync(byte[]? eventName)
    {
        if (_events++ > 0 && _fault.Kind is FaultKind.SlowChunks or FaultKind.StampedChunks && _fault.Value > 0)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(_fault.Value), _time, Aborted);
        }
        if (eventName is not null)
        {
            _pipe.Write("event: "u8);
            _pipe.Write(eventName);
            _pipe.Write("\n"u8);
        }
        _pipe.Write("data: "u8);
        _json.Reset(_pipe);
        return _json;
    }

    /// <summary>
    /// A text chunk as written: unchanged, or with fault-stamped-chunks followed by <c> [r=RECEIVED s=WRITTEN]</c>, both
    /// <see cref="System.Diagnostics.Stopwatch"/> timestamps (the machine's monotonic clock, so a client on the same machine
    /// can subtract its own): when the request reached the handler, and now, just before the event is flushed.
    /// </summary>
    public string Text(string chunk) => _fault.Kind == FaultKind.StampedChunks
        ? string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{chunk} [r={_received} s={System.Diagnostics.Stopwatch.GetTimestamp()}]")
        : chunk;

    /// <summary>
    /// Ends and flushes the event. For a content chunk, applies the stream faults; false means the
    /// connection was cut and the caller must stop writing.
    /// </summary>
    public async ValueTask<bool> EndAsync(bool contentChunk = false)
    {
        _json.Flush();
        _pipe.Write("\n\n"u8);
        await _pipe.FlushAsync(Aborted);
        if (!contentChunk)
        {
            return true;
        }
        _contentChunks++;
        return await AfterContentAsync(endOfContent: false);
    }

    /// <summary>
    /// Called after the last content chunk: a reply shorter than the fault's N is still cut (or
    /// broken) before its finish events, so the fault always shows.
    /// </summary>
    public ValueTask<bool> EndOfContentAsync() => AfterContentAsync(endOfContent: true);

    /// <summary>An event whose data is written verbatim (Anthropic's ping keeps the fixture's bytes).</summary>
    public async ValueTask WriteRawAsync(byte[]? eventName, ReadOnlyMemory<byte> data)
    {
        await BeginAsync(eventName);
        _pipe.Write(data.Span);
        _pipe.Write("\n\n"u8);
        await _pipe.FlushAsync(Aborted);
    }

    /// <summary>OpenAI and llama.cpp end a stream with <c>data: [DONE]</c> (openai_chat_stream_text_usage.sse).</summary>
    public ValueTask WriteDoneAsync() => WriteRawAsync(null, "[DONE]"u8.ToArray());

    /// <summary>
    /// Called once the stream's last event is out. With fault-late-end@MS the body ends MS later: on HTTP/1.1 the last
    /// chunk (<c>0\r\n\r\n</c>) follows the final event after a pause, as it can from a real server over a network.
    /// </summary>
    public async ValueTask FinishAsync()
    {
        if (_fault.Kind == FaultKind.LateEnd && _fault.Value > 0)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(_fault.Value), _time, Aborted);
        }
    }

    public void Dispose() => _json.Dispose();

    private async ValueTask<bool> AfterContentAsync(bool endOfContent)
    {
        if (_fault.Kind == FaultKind.CutStream && (endOfContent || _contentChunks >= _fault.Value))
        {
            // Everything written so far has been flushed. An abort can reach the peer as a TCP reset,
            // and Linux discards received-but-unread data on a reset, so give the client a moment to
            // read the N chunks first: it must see them, then the cut.
            await Task.Delay(CutGrace, _time, Aborted);
            _context.Abort();
            return false;
        }
        if (_fault.Kind == FaultKind.MalformedChunk && !_malformedSent && (endOfContent || _contentChunks >= _fault.Value))
        {
            _malformedSent = true;
            _pipe.Write(_malformedEvent.Span);
            await _pipe.FlushAsync(Aborted);
        }
        return true;
    }
}
