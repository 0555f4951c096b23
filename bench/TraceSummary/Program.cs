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
var options = Options.Parse(args);
if (options is null)
{
    Console.Error.WriteLine("usage: TraceSummary <file.nettrace> [--requests N] [--type NAME|*] [--depth N] [--top N] [--stalls MS]");
    return 2;
}

using var log = TraceLog.OpenOrConvert(TraceLog.CreateFromEventPipeDataFile(options.Path));
var byType = new Dictionary<string, long>();
var byStack = new Dictionary<string, long>();
long total = 0, typeTotal = 0;
var pauses = new List<(double AtMs, double Ms, int Generation)>();
var completions = new List<double>();
var poolChanges = new List<(double AtMs, string What)>();
var contentions = new List<(double AtMs, double Ms)>();
long promotedToGen1 = 0, promotedToGen2 = 0;
double suspendedAt = -1;
var generation = -1;
foreach (var e in log.Events)
{
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
            pauses.Add((suspendedAt, e.TimeStampRelativeMSec - suspendedAt, generation));
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

internal sealed record Options(string Path, long? Requests, string Type, int Depth, int Top, double? StallMs)
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
        for (var i = 1; i + 1 < args.Length; i += 2)
        {
            switch (args[i])
            {
                case "--requests": requests = long.Parse(args[i + 1], System.Globalization.CultureInfo.InvariantCulture); break;
                case "--type": type = args[i + 1]; break;
                case "--depth": depth = int.Parse(args[i + 1], System.Globalization.CultureInfo.InvariantCulture); break;
                case "--top": top = int.Parse(args[i + 1], System.Globalization.CultureInfo.InvariantCulture); break;
                case "--stalls": stallMs = double.Parse(args[i + 1], System.Globalization.CultureInfo.InvariantCulture); break;
                default: return null;
            }
        }
        return new Options(args[0], requests, type, depth, top, stallMs);
    }
}
