using System.Diagnostics;
using System.Net.Http.Headers;

// Streams the same request over N connections for a while and times each Server-Sent Event that carries answer text as
// it arrives: time to first chunk (request sent → first text event complete) and, per request, the largest gap between
// two text events.
// Prints one RESULT line (µs) that bench/run.sh reads; run it against the mock and the gateway in the same run and
// subtract to get what the gateway adds.
// With the mock's fault-stamped-chunks (docs/fake-upstream.md) each text chunk says when the mock got the request (R) and
// wrote the chunk (S), on this machine's monotonic clock (Stopwatch), so the probe also times the path alone, free of the
// mock's own pacing and its timer's jitter (a 10 ms delay took 10-15 ms here): the first chunk's path = time to first
// chunk - (S1 - R), the request's way in (R - sent) and the chunk's way out (received - S1), each also printed alone; each
// chunk's delivery = received - S; and per request the largest rise in delivery from one chunk to the next
// (delivery_k - delivery_k-1): a gap the path added between two chunks.
//
// With --samples FILE it also writes each stamped sample of the measured run, in Stopwatch ticks of the machine's monotonic
// clock (the clock a runtime trace is stamped with), for TraceSummary --probe to tell which of the slowest overlapped a GC
// pause of the gateway: "path SENT R S1 RECEIVED" for a first chunk, "rise S RECEIVED RISE" for each later one.
//
//   StreamProbe --url URL --body FILE [--connections 32] [--duration 10] [--warmup 2] [--key sk-dev-local] [--samples FILE]
var options = Args.Parse(args);
var body = await File.ReadAllBytesAsync(options.BodyFile);
using var handler = new SocketsHttpHandler
{
    MaxConnectionsPerServer = options.Connections,
    PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
    UseProxy = false,
};
using var http = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(30) };

await RunAsync(TimeSpan.FromSeconds(options.Warmup), record: false);
var results = await RunAsync(TimeSpan.FromSeconds(options.Duration), record: true);

var ttfc = results.Where(r => r.Ok).Select(r => r.FirstChunkUs).Order().ToArray();
var gaps = results.Where(r => r.Ok).Select(r => r.LargestGapUs).Order().ToArray();
var errors = results.Count(r => !r.Ok);
var stamped = results.Where(r => r.Ok && r.Stamped).ToArray();
var paths = stamped.Select(r => r.FirstPathUs).Order().ToArray();
var deliveries = stamped.SelectMany(r => r.DeliveriesUs).Order().ToArray();
var rises = stamped.Select(r => r.LargestRiseUs).Order().ToArray();
var waysIn = stamped.Select(r => r.WayInUs).Order().ToArray();
var firstOuts = stamped.Select(r => r.FirstOutUs).Order().ToArray();
Console.WriteLine($"RESULT requests={ttfc.Length} errors={errors} ttfc_p50_us={Percentile(ttfc, 50)} ttfc_p99_us={Percentile(ttfc, 99)} "
    + $"gap_p50_us={Percentile(gaps, 50)} gap_p99_us={Percentile(gaps, 99)} gap_max_us={(gaps.Length == 0 ? 0 : gaps[^1])} "
    + $"events_per_request={(results.Count(r => r.Ok) == 0 ? 0 : results.Where(r => r.Ok).Average(r => r.Events)):0.#} "
    + $"stamped={stamped.Length} path_p50_us={Percentile(paths, 50)} path_p99_us={Percentile(paths, 99)} "
    + $"delivery_p50_us={Percentile(deliveries, 50)} delivery_p99_us={Percentile(deliveries, 99)} "
    + $"rise_p99_us={Percentile(rises, 99)} rise_max_us={(rises.Length == 0 ? 0 : rises[^1])} "
    + $"in_p50_us={Percentile(waysIn, 50)} in_p99_us={Percentile(waysIn, 99)} first_out_p50_us={Percentile(firstOuts, 50)} first_out_p99_us={Percentile(firstOuts, 99)}");
if (options.SamplesFile is { } samplesFile)
{
    await File.WriteAllLinesAsync(samplesFile, stamped.SelectMany(r => r.Lines));
}
return errors == 0 ? 0 : 1;

async Task<List<Sample>> RunAsync(TimeSpan length, bool record)
{
    var until = Stopwatch.GetTimestamp() + (long)(length.TotalSeconds * Stopwatch.Frequency);
    var all = new List<Sample>();
    var loops = Enumerable.Range(0, options.Connections).Select(async _ =>
    {
        var mine = new List<Sample>();
        var buffer = new byte[16384];
        // Independent clients do not start in step: each connection begins at a random moment of the first 100 ms, so
        // 32 identical streams do not arrive as one burst every time (which would time the burst, not the gateway).
        await Task.Delay(Random.Shared.Next(0, 100));
        while (Stopwatch.GetTimestamp() < until)
        {
            mine.Add(await OneAsync(buffer));
        }
        return mine;
    }).ToArray();
    foreach (var loop in loops)
    {
        all.AddRange(await loop);
    }
    return record ? all : [];
}

async Task<Sample> OneAsync(byte[] buffer)
{
    using var request = new HttpRequestMessage(HttpMethod.Post, options.Url) { Content = new ByteArrayContent(body) };
    request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
    request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", options.Key);
    request.Headers.Add("x-api-key", "sk-ant-bench");
    request.Headers.Add("anthropic-version", "2023-06-01");
    var sent = Stopwatch.GetTimestamp();
    try
    {
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        if (!response.IsSuccessStatusCode)
        {
            return Sample.Failed;
        }
        await using var stream = await response.Content.ReadAsStreamAsync();
        long first = 0, previous = 0, largestGap = 0;
        int events = 0;
        // With stamps: the first chunk's mock time (S1 - R), each chunk's delivery, and the largest rise in delivery.
        long firstMockTicks = -1, firstReceived = 0, firstWritten = 0, previousDelivery = 0, largestRise = 0;
        var deliveries = new List<long>(16);
        var lines = options.SamplesFile is null ? null : new List<string>(16); // only with --samples
        var current = new List<byte>(512); // the event being read (an event may span reads)
        int read;
        while ((read = await stream.ReadAsync(buffer)) > 0)
        {
            var now = Stopwatch.GetTimestamp();
            for (var i = 0; i < read; i++)
            {
                current.Add(buffer[i]);
                // An event ends with a blank line; it counts if it carries text, stamped when the read that completed it returned.
                if (buffer[i] != (byte)'\n' || current.Count < 2 || current[^2] != (byte)'\n')
                {
                    continue;
                }
                var sse = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(current);
                if (CarriesText(sse))
                {
                    if (TryStamps(sse, out var received, out var written))
                    {
                        var delivery = now - written;
                        if (events == 0)
                        {
                            firstMockTicks = written - received;
                            firstReceived = received;
                            firstWritten = written;
                        }
                        else
                        {
                            largestRise = Math.Max(largestRise, delivery - previousDelivery);
                        }
                        deliveries.Add(Micros(delivery));
                        lines?.Add(events == 0 ? $"path {sent} {received} {written} {now}" : $"rise {written} {now} {delivery - previousDelivery}");
                        previousDelivery = delivery;
                    }
                    if (events++ == 0)
                    {
                        first = now;
                    }
                    else
                    {
                        largestGap = Math.Max(largestGap, now - previous);
                    }
                    previous = now;
                }
                current.Clear();
            }
        }
        if (events == 0)
        {
            return Sample.Failed;
        }
        var isStamped = firstMockTicks >= 0 && deliveries.Count == events;
        return new Sample(true, Micros(first - sent), Micros(largestGap), events, isStamped,
            isStamped ? Micros(first - sent - firstMockTicks) : 0, isStamped ? deliveries : [], isStamped ? Micros(largestRise) : 0,
            isStamped ? Micros(firstReceived - sent) : 0, isStamped ? Micros(first - firstWritten) : 0) { Lines = lines ?? [] };
    }
    catch (Exception ex) when (ex is HttpRequestException or IOException or TaskCanceledException)
    {
        return Sample.Failed;
    }
}

// A chunk that carries answer text: OpenAI's "content":"x…" or Anthropic's text_delta "text":"x…" (not empty), so the
// Anthropic stream (direct) and its OpenAI translation (gateway) are timed on the same thing: text reaching the client.
static bool CarriesText(ReadOnlySpan<byte> sse) => HasNonEmpty(sse, "\"content\":\""u8) || HasNonEmpty(sse, "\"text\":\""u8);

static bool HasNonEmpty(ReadOnlySpan<byte> sse, ReadOnlySpan<byte> key)
{
    var at = sse.IndexOf(key);
    return at >= 0 && at + key.Length < sse.Length && sse[at + key.Length] != (byte)'"';
}

// The mock's " [r=R s=S]" at the end of a chunk's text (fault-stamped-chunks).
static bool TryStamps(ReadOnlySpan<byte> sse, out long received, out long written)
{
    received = written = 0;
    var at = sse.LastIndexOf(" [r="u8);
    if (at < 0)
    {
        return false;
    }
    var rest = sse[(at + 4)..];
    var space = rest.IndexOf(" s="u8);
    if (space < 0 || !System.Buffers.Text.Utf8Parser.TryParse(rest[..space], out received, out _))
    {
        return false;
    }
    rest = rest[(space + 3)..];
    var end = rest.IndexOf((byte)']');
    return end > 0 && System.Buffers.Text.Utf8Parser.TryParse(rest[..end], out written, out _);
}

static long Micros(long ticks) => ticks * 1_000_000 / Stopwatch.Frequency;

static long Percentile(long[] sorted, int p) => sorted.Length == 0 ? 0 : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p / 100.0 * sorted.Length) - 1)];

// FirstPathUs = WayInUs (request sent -> the mock has it) + FirstOutUs (the mock wrote the first chunk -> the client has it).
internal readonly record struct Sample(bool Ok, long FirstChunkUs, long LargestGapUs, int Events, bool Stamped, long FirstPathUs,
    IReadOnlyList<long> DeliveriesUs, long LargestRiseUs, long WayInUs, long FirstOutUs)
{
    /// <summary>The sample's lines for --samples (empty without it).</summary>
    public IReadOnlyList<string> Lines { get; init; } = [];

    public static Sample Failed => new(false, 0, 0, 0, false, 0, [], 0, 0, 0);
}

internal sealed record Args(string Url, string BodyFile, int Connections, int Duration, int Warmup, string Key, string? SamplesFile)
{
    public static Args Parse(string[] args)
    {
        string? Get(string name) => Array.IndexOf(args, name) is var i and >= 0 && i + 1 < args.Length ? args[i + 1] : null;
        return new Args(Get("--url") ?? throw new ArgumentException("--url is required"),
            Get("--body") ?? throw new ArgumentException("--body is required"),
            int.Parse(Get("--connections") ?? "32"), int.Parse(Get("--duration") ?? "10"), int.Parse(Get("--warmup") ?? "2"),
            Get("--key") ?? "sk-dev-local", Get("--samples"));
    }
}
