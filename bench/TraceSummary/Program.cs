using Microsoft.Diagnostics.Tracing;
using Microsoft.Diagnostics.Tracing.Etlx;
using Microsoft.Diagnostics.Tracing.Parsers.Clr;

// Summarises a .nettrace captured with the runtime's GC events (docs/benchmark.md, "Profiling"):
//   TraceSummary <file.nettrace> [--requests N] [--type System.Byte[]] [--depth 6] [--top 25]
// Prints allocations by type (sampled every ~100 KB by the runtime's AllocationTick event, so figures are estimates), then
// for one type (or all, "*") the call stacks that allocate it, then GC pauses by generation. With --requests (the requests
// served during the capture) every figure is also given per request.
// With --stalls MS (capture the Microsoft.AspNetCore.Hosting provider too): every stretch of MS or more in which no request
// completed, with what the runtime reported during it (GC pauses, thread-pool thread changes and why, lock contention over
// 1 ms), to tell a stall inside the gateway from one outside it (a starved upstream, a paused machine).
// With --probe FILE (StreamProbe --samples, run while the trace was captured): of the slowest first-chunk paths and
// per-request largest delivery rises (the p99 and above), how many overlapped a GC pause of the traced process, and the p99 without those: whether
// a stream's tail is the gateway's own collections or the machine's scheduling. Both files carry the monotonic clock's ticks.
// Raw timestamps (TimeStampQPC, "discouraged" in favour of relative times) are what --probe matches another process's clock by.
#pragma warning disable CS0618
var options = Options.Parse(args);
if (options is null)
{
    Console.Error.WriteLine("usage: TraceSummary <file.nettrace> [--requests N] [--type NAME|*] [--depth N] [--top N] [--stalls MS] [--probe FILE]");
    return 2;
}

using var log = TraceLog.OpenOrConvert(TraceLog.CreateFromEventPipeDataFile(options.Path));
var byType = new Dictionary<string, long>();
var byStack = new Dictionary<string, long>();
long total = 0, typeTotal = 0;
// Each pause also on the raw clock (FromQpc, ToQpc), for --probe.
var pauses = new List<(double AtMs, double Ms, int Generation, long FromQpc, long ToQpc)>();
var completions = new List<double>();
var poolChanges = new List<(double AtMs, string What)>();
var contentions = new List<(double AtMs, double Ms)>();
long promotedToGen1 = 0, promotedToGen2 = 0;
double suspendedAt = -1;
long suspendedQpc = 0, firstQpc = long.MaxValue, lastQpc = 0;
var generation = -1;
foreach (var e in log.Events)
{
    (firstQpc, lastQpc) = (Math.Min(firstQpc, e.TimeStampQPC), Math.Max(lastQpc, e.TimeStampQPC));
    switch (e)
    {
        case GCAllocationTickTraceData tick:
            var type = tick.TypeName ?? "?";
            total += tick.AllocationAmount64;
            byType[type] = byType.GetValueOrDefault(type) + tick.AllocationAmount64;
            if (options.Type == "*" || options.Type == type)
            {
                typeTotal += tick.AllocationAmount64;
                var stack = Stack(e.CallStack(), options.Depth);
                byStack[stack] = byStack.GetValueOrDefault(stack) + tick.AllocationAmount64;
            }
            break;
        case GCSuspendEETraceData:
            suspendedAt = e.TimeStampRelativeMSec;
            suspendedQpc = e.TimeStampQPC;
            break;
        case GCHeapStatsTraceData stats:
            // What each collection kept: gen0's survivors move to gen1, gen1's (in a gen1 or gen2 collection) to gen2.
            promotedToGen1 += stats.TotalPromotedSize0;
            promotedToGen2 += stats.TotalPromotedSize1;
            break;
        case GCStartTraceData start:
            generation = start.Depth;
            break;
        case GCNoUserDataTraceData when e.EventName == "GC/RestartEEStop" && suspendedAt >= 0:
            pauses.Add((suspendedAt, e.TimeStampRelativeMSec - suspendedAt, generation, suspendedQpc, e.TimeStampQPC));
            suspendedAt = -1;
            break;
        case { ProviderName: "Microsoft.AspNetCore.Hosting", EventName: "Request/Stop" }:
            completions.Add(e.TimeStampRelativeMSec);
            break;
        case { EventName: "ThreadPoolWorkerThreadAdjustment/Adjustment" }:
            poolChanges.Add((e.TimeStampRelativeMSec, $"workers -> {e.PayloadByName("NewWorkerThreadCount")} ({e.PayloadByName("Reason")})"));
            break;
        case { EventName: "Contention/Stop" } when e.PayloadByName("DurationNs") is double ns && ns > 1e6:
            contentions.Add((e.TimeStampRelativeMSec - ns / 1e6, ns / 1e6));
            break;
    }
}

if (options.ProbeFile is { } probeFile)
{
    // Samples inside the capture only: a pause outside it is unknown, so a sample there would count as clear of GC.
    var (first, last) = (firstQpc, lastQpc);
    bool Paused(long from, long to) => pauses.Any(p => p.FromQpc < to && p.ToQpc > from);
    var paths = new List<(double Us, bool Gc)>();
    // Per request, its largest rise (what StreamProbe's rise_p99 and the bench's added gap are taken from): a path line
    // starts a request, its rise lines follow.
    var rises = new List<(double Us, bool Gc)>();
    (double Us, bool Gc)? largest = null;
    // On Linux a trace's timestamps and another process's Stopwatch are both CLOCK_MONOTONIC in nanoseconds.
    var toUs = 1e6 / System.Diagnostics.Stopwatch.Frequency;
    foreach (var f in File.ReadLines(probeFile).Select(l => l.Split(' ')))
    {
        var t = f.Skip(1).Select(long.Parse).ToArray();
        if (f[0] == "path")
        {
            AddLargest();
            if (t[0] >= first && t[3] <= last)
            {
                // The way in (sent -> the mock has it) and the way out (the mock wrote it -> the client has it).
                paths.Add(((t[1] - t[0] + t[3] - t[2]) * toUs, Paused(t[0], t[1]) || Paused(t[2], t[3])));
            }
        }
        else if (f[0] == "rise" && t[0] >= first && t[1] <= last && (largest is null || t[2] * toUs > largest.Value.Us))
        {
            largest = (t[2] * toUs, Paused(t[0], t[1]));
        }
    }
    AddLargest();
    Console.WriteLine($"GC pauses: {pauses.Count} in {(last - first) * toUs / 1e6:F1} s, {pauses.Sum(p => p.Ms):F1} ms in all");
    ProbeTail("first chunk's path", paths);
    ProbeTail("largest rise per request", rises);
    return 0;

    void AddLargest()
    {
        if (largest is { } r)
        {
            rises.Add(r);
        }
        largest = null;
    }
}

if (options.StallMs is { } stallMs)
{
    completions.Sort();
    Console.WriteLine($"{completions.Count} requests completed; stretches of {stallMs} ms or more without one:");
    for (var i = 1; i < completions.Count; i++)
    {
        var (from, to) = (completions[i - 1], completions[i]);
        if (to - from < stallMs)
        {
            continue;
        }
        var gcs = pauses.Where(p => p.AtMs < to && p.AtMs + p.Ms > from).Select(p => $"gen{p.Generation} {p.Ms:F1} ms");
        var pool = poolChanges.Where(c => c.AtMs >= from && c.AtMs <= to).Select(c => c.What);
        var locks = contentions.Where(c => c.AtMs < to && c.AtMs + c.Ms > from).Select(c => $"{c.Ms:F1} ms");
        Console.WriteLine($"  at {from / 1000:F3} s: {to - from:F1} ms; GC [{string.Join(", ", gcs)}]; thread pool [{string.Join(", ", pool)}]; contention [{string.Join(", ", locks)}]");
    }
    return 0;
}

string PerRequest(long bytes) => options.Requests is { } n and > 0 ? $" {bytes / 1024.0 / n,7:F2} KB/req" : "";
Console.WriteLine($"allocated (sampled): {total / 1e6:F1} MB{PerRequest(total)}");
foreach (var (type, bytes) in byType.OrderByDescending(x => x.Value).Take(options.Top))
{
    Console.WriteLine($"{bytes * 100.0 / total,6:F1}% {bytes / 1e6,8:F1} MB{PerRequest(bytes)}  {type}");
}
Console.WriteLine();
Console.WriteLine($"stacks allocating {options.Type}: {typeTotal / 1e6:F1} MB{PerRequest(typeTotal)}");
foreach (var (stack, bytes) in byStack.OrderByDescending(x => x.Value).Take(options.Top))
{
    Console.WriteLine($"{bytes * 100.0 / Math.Max(1, typeTotal),6:F1}% {bytes / 1e6,8:F1} MB{PerRequest(bytes)}\n{stack}\n");
}
Console.WriteLine($"GC pauses: {pauses.Count}, {pauses.Sum(p => p.Ms):F1} ms in all"
    + (options.Requests is { } r and > 0 ? $", {pauses.Sum(p => p.Ms) * 1000 / r:F1} µs/req, {pauses.Count * 1000.0 / r:F2} per 1,000 requests" : ""));
foreach (var g in pauses.GroupBy(p => p.Generation).OrderBy(g => g.Key))
{
    var ms = g.Select(p => p.Ms).Order().ToList();
    Console.WriteLine($"  gen{g.Key}: {ms.Count} pauses, p50 {ms[ms.Count / 2]:F2} ms, p99 {ms[(int)(ms.Count * 0.99)]:F2} ms, max {ms[^1]:F2} ms");
}
// Promoted into gen2: what outlived two collections and will stay until a gen2 collection, the garbage that makes RSS swing.
Console.WriteLine($"promoted into gen1: {promotedToGen1 / 1e6:F1} MB{PerRequest(promotedToGen1)}; into gen2: {promotedToGen2 / 1e6:F1} MB{PerRequest(promotedToGen2)}");
return 0;

static void ProbeTail(string name, List<(double Us, bool Gc)> samples)
{
    if (samples.Count == 0)
    {
        Console.WriteLine($"{name}: no samples inside the capture");
        return;
    }
    static double P99(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? 0 : sorted[Math.Max(0, (int)Math.Ceiling(0.99 * sorted.Length) - 1)];
    }
    var p99 = P99(samples.Select(s => s.Us));
    var tail = samples.Where(s => s.Us >= p99).ToArray();
    Console.WriteLine($"{name}: {samples.Count} samples, p99 {p99:F0} us; at or above it {tail.Length}, of which {tail.Count(s => s.Gc)} overlapped a GC pause; "
        + $"{samples.Count(s => s.Gc)} samples in all overlapped one; p99 without them {P99(samples.Where(s => !s.Gc).Select(s => s.Us)):F0} us");
}

// The managed frames of an allocation, innermost first, without the allocator's own frames.
static string Stack(TraceCallStack? frame, int depth)
{
    var frames = new List<string>();
    for (; frame is not null && frames.Count < depth; frame = frame.Caller)
    {
        var name = frame.CodeAddress.FullMethodName;
        if (string.IsNullOrEmpty(name) || name.StartsWith("System.GC", StringComparison.Ordinal)
            || name.Contains("AllocateUninitialized", StringComparison.Ordinal)
            || name.StartsWith("System.Runtime.CompilerServices.AsyncMethodBuilderCore", StringComparison.Ordinal))
        {
            continue;
        }
        var paren = name.IndexOf('(');
        frames.Add("    " + (paren > 0 ? name[..paren] : name));
    }
    return frames.Count == 0 ? "    (no managed frames)" : string.Join('\n', frames);
}

internal sealed record Options(string Path, long? Requests, string Type, int Depth, int Top, double? StallMs, string? ProbeFile)
{
    public static Options? Parse(string[] args)
    {
        if (args.Length == 0 || !File.Exists(args[0]))
        {
            return null;
        }
        long? requests = null;
        string type = "*";
        int depth = 6, top = 25;
        double? stallMs = null;
        string? probe = null;
        for (var i = 1; i + 1 < args.Length; i += 2)
        {
            switch (args[i])
            {
                case "--requests": requests = long.Parse(args[i + 1], System.Globalization.CultureInfo.InvariantCulture); break;
                case "--type": type = args[i + 1]; break;
                case "--depth": depth = int.Parse(args[i + 1], System.Globalization.CultureInfo.InvariantCulture); break;
                case "--top": top = int.Parse(args[i + 1], System.Globalization.CultureInfo.InvariantCulture); break;
                case "--stalls": stallMs = double.Parse(args[i + 1], System.Globalization.CultureInfo.InvariantCulture); break;
                case "--probe": probe = args[i + 1]; break;
                default: return null;
            }
        }
        return new Options(args[0], requests, type, depth, top, stallMs, probe);
    }
}
