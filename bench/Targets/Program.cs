using System.Globalization;
using System.Text.Json;

// Issue 9's targets from the bench's result files, one per run (bench/run.sh writes bench/results/run-N.json with RUNS=N):
//   Targets run-1.json [run-2.json ...] [--soak soak.json]
// For each target: the figure of every run, their median (the issue asks for medians of several runs: the machine is shared
// and one row can move 2x), the limit, and whether the median meets it. A target whose scenario no run measured is "n/a".
// Exit code 0 whatever the verdicts: the table is the output, not a test.
var files = new List<string>();
string? soakFile = null;
for (var i = 0; i < args.Length; i++)
{
    if (args[i] == "--soak" && i + 1 < args.Length)
    {
        soakFile = args[++i];
    }
    else
    {
        files.Add(args[i]);
    }
}
if (files.Count == 0)
{
    Console.Error.WriteLine("usage: Targets RESULTS.json [RESULTS.json ...] [--soak SOAK.json]");
    return 2;
}

var runs = files.Select(f => JsonDocument.Parse(File.ReadAllText(f)).RootElement.EnumerateArray().Select(Row.From).ToList()).ToList();
var targets = new List<Target>
{
    Ratio("CPU per request vs YARP, OpenAI JSON, 32 conns", 2.0, "x", "openai", r => r.CpuUs),
    Ratio("CPU per request vs YARP, Anthropic JSON, 32 conns", 2.0, "x", "anthropic", r => r.CpuUs),
    Gateway("added p50, OpenAI JSON, 1 conn", 0.5, "ms", "json", "openai", 1, r => r.AddedP50Ms, strictlyBelow: true),
    Gateway("added p50, Anthropic JSON, 1 conn", 0.5, "ms", "json", "anthropic", 1, r => r.AddedP50Ms, strictlyBelow: true),
    Ratio("p99 vs YARP, OpenAI JSON, 32 conns", 3.0, "x", "openai", r => r.P99Ms),
    Ratio("p99 vs YARP, Anthropic JSON, 32 conns", 3.0, "x", "anthropic", r => r.P99Ms),
    Gateway("first chunk's path added p99, OpenAI stream, 32 conns", 1.0, "ms", "stream", "openai", 32, r => r.AddedPathP99Ms, strictlyBelow: true),
    Gateway("first chunk's path added p99, Anthropic stream, 32 conns", 1.0, "ms", "stream", "anthropic", 32, r => r.AddedPathP99Ms, strictlyBelow: true),
    Gateway("added gap between chunks p99, OpenAI stream, 32 conns", 1.0, "ms", "stream", "openai", 32, r => r.AddedRiseP99Ms, strictlyBelow: false),
    Gateway("added gap between chunks p99, Anthropic stream, 32 conns", 1.0, "ms", "stream", "anthropic", 32, r => r.AddedRiseP99Ms, strictlyBelow: false),
    new("gateway peak RSS, 256 conns", 250, "MB", true, runs.Select(rows => rows.Where(r => r.Target == "gateway" && r.Connections == 256)
        .Select(r => (double?)r.PeakRssMb).DefaultIfEmpty(null).Max()).ToList()),
    new("errors, every scenario and probe", 0, "", false, runs.Select(rows => rows.Count == 0 ? null : (double?)rows.Sum(r => r.Errors)).ToList()),
};

Console.WriteLine($"issue 9 targets over {runs.Count} run(s): {string.Join(", ", files.Select(Path.GetFileName))}");
Console.WriteLine($"{"target",-58} {"runs",-34} {"median",9} {"limit",9}  {"verdict",-8} yarp's median");
foreach (var t in targets)
{
    var values = t.Values.Where(v => v is not null).Select(v => v!.Value).ToList();
    var perRun = string.Join(" ", t.Values.Select(v => v is null ? "-" : Format(v.Value)));
    if (values.Count == 0)
    {
        Console.WriteLine($"{t.Name,-58} {perRun,-34} {"n/a",9} {Limit(t),9}  n/a");
        continue;
    }
    var median = Median(values);
    var met = t.StrictlyBelow ? median < t.Limit : median <= t.Limit;
    var floor = t.Floor.Where(v => v is not null).Select(v => v!.Value).ToList();
    Console.WriteLine($"{t.Name,-58} {perRun,-34} {Format(median) + t.Unit,9} {Limit(t),9}  {(met ? "met" : "NOT MET"),-8} "
        + (floor.Count > 0 ? Format(Median(floor)) + t.Unit : ""));
}
if (soakFile is not null && File.Exists(soakFile))
{
    var soak = JsonDocument.Parse(File.ReadAllText(soakFile)).RootElement;
    var second = soak.GetProperty("second_minute_max_mb").GetDouble();
    var last = soak.GetProperty("last_minute_max_mb").GetDouble();
    Console.WriteLine($"{"soak: last minute's RSS no higher than the second's",-58} {$"{second:0} -> {last:0} MB",-34} {"",9} {"<= 2nd",9}  "
        + (soak.GetProperty("verdict").GetString() == "pass" ? "met" : "NOT MET"));
}
return 0;

Target Ratio(string name, double limit, string unit, string protocol, Func<Row, double?> figure) =>
    new(name, limit, unit, false, runs.Select(rows =>
    {
        var gateway = rows.FirstOrDefault(r => r is { Target: "gateway", Kind: "json", Connections: 32 } && r.Protocol == protocol);
        var yarp = rows.FirstOrDefault(r => r is { Target: "yarp", Kind: "json", Connections: 32 } && r.Protocol == protocol);
        return gateway is not null && yarp is not null && figure(gateway) is { } g && figure(yarp) is { } y and > 0 ? g / y : (double?)null;
    }).ToList());

Target Gateway(string name, double limit, string unit, string kind, string protocol, int connections, Func<Row, double?> figure, bool strictlyBelow)
{
    List<double?> Of(string target) => runs.Select(rows =>
        rows.FirstOrDefault(r => r.Target == target && r.Kind == kind && r.Protocol == protocol && r.Connections == connections) is { } row
            ? figure(row) : null).ToList();
    return new(name, limit, unit, strictlyBelow, Of("gateway")) { Floor = Of("yarp") };
}

static double Median(List<double> values)
{
    values.Sort();
    var n = values.Count;
    return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

static string Format(double value) =>
    value.ToString(Math.Abs(value) >= 100 || value == Math.Floor(value) ? "0" : "0.00", CultureInfo.InvariantCulture);

static string Limit(Target t) => (t.StrictlyBelow ? "< " : "<= ") + Format(t.Limit) + t.Unit;

/// <summary>One target: its name, limit and unit, whether the limit itself fails, and each run's figure (null: not measured).</summary>
internal sealed record Target(string Name, double Limit, string Unit, bool StrictlyBelow, List<double?> Values)
{
    /// <summary>The same figure for YARP in each run, where it has one: the .NET floor the gateway's figure stands beside.</summary>
    public List<double?> Floor { get; init; } = [];
}

/// <summary>One row of a result file (bench/run.sh writes the fields; the paced probe's are under "paced" for streams).</summary>
internal sealed record Row(string Target, string Kind, string Protocol, int Connections, double? CpuUs, double P99Ms, double AddedP50Ms,
    double PeakRssMb, int Errors, double? AddedPathP99Ms, double? AddedRiseP99Ms)
{
    public static Row From(JsonElement e)
    {
        double? paced(string name) => e.TryGetProperty("paced", out var p) && p.TryGetProperty(name, out var v) ? v.GetDouble() : null;
        var probeErrors = e.TryGetProperty("paced", out var pe) && pe.TryGetProperty("errors", out var pv) ? pv.GetInt32() : 0;
        return new Row(e.GetProperty("target").GetString()!, e.GetProperty("kind").GetString()!, e.GetProperty("protocol").GetString()!,
            e.GetProperty("connections").GetInt32(),
            e.GetProperty("cpu_us_per_request").ValueKind == JsonValueKind.Number ? e.GetProperty("cpu_us_per_request").GetDouble() : null,
            e.GetProperty("p99_ms").GetDouble(), e.GetProperty("added_p50_ms").GetDouble(), e.GetProperty("peak_rss_mb").GetDouble(),
            e.GetProperty("errors").GetInt32() + probeErrors, paced("added_path_p99_ms"), paced("added_delivery_rise_p99_ms"));
    }
}
