using System.Runtime.InteropServices;
using Microsoft.Diagnostics.NETCore.Client;
using Microsoft.Diagnostics.Runtime;

// What the GC heap holds at one moment, garbage included (docs/benchmark.md, "Profiling"):
//   HeapWalk dump PID FILE          write a heap dump of a running process (it pauses for a second or two)
//   HeapWalk FILE [--top N]         objects by generation, dead and live separately, the largest types of each
//   HeapWalk FILE --strings         the dead strings in gen2, by length and first characters (what they are)
//   HeapWalk FILE --holders TYPE    what refers to the live instances of TYPE, with three sample chains towards a root
// A gcdump (dotnet-gcdump) shows only what is alive; the garbage that outlived the young generations, which is what makes
// RSS swing between gen2 collections, shows only in a full dump: an object is dead here when no root reaches it.
if (args.Length >= 3 && args[0] == "dump")
{
    new DiagnosticsClient(int.Parse(args[1])).WriteDump(DumpType.WithHeap, Path.GetFullPath(args[2]));
    return 0;
}
if (args.Length == 0 || !File.Exists(args[0]))
{
    Console.Error.WriteLine("usage: HeapWalk dump PID FILE | HeapWalk FILE [--top N | --strings | --holders TYPE]");
    return 2;
}

using var target = DataTarget.LoadDump(args[0]);
// The DAC of the runtime this tool runs on: the dump is of a process on the same machine and runtime. The dump's own
// version is not always readable on Linux, hence no version check.
var dac = Path.Combine(RuntimeEnvironment.GetRuntimeDirectory(), "libmscordaccore.so");
var heap = target.ClrVersions[0].CreateRuntime(dac, ignoreMismatch: true).Heap;

// Mark from the roots, remembering one referrer per object.
var referrer = new Dictionary<ulong, ulong>();
var live = new HashSet<ulong>();
var pending = new Stack<ulong>();
foreach (var root in heap.EnumerateRoots())
{
    if (root.Object.Address != 0 && live.Add(root.Object.Address))
    {
        pending.Push(root.Object.Address);
    }
}
while (pending.Count > 0)
{
    var obj = heap.GetObject(pending.Pop());
    if (!obj.IsValid)
    {
        continue;
    }
    foreach (var child in obj.EnumerateReferenceAddresses(carefully: true))
    {
        if (child != 0 && live.Add(child))
        {
            referrer[child] = obj.Address;
            pending.Push(child);
        }
    }
}

var option = args.Length > 1 ? args[1] : "--top";
if (option == "--holders" && args.Length > 2)
{
    var holders = new Dictionary<string, int>();
    var samples = 0;
    foreach (var address in live.Where(a => heap.GetObjectType(a)?.Name == args[2]))
    {
        var holder = referrer.TryGetValue(address, out var r) ? heap.GetObjectType(r)?.Name ?? "?" : "(a root)";
        holders[holder] = holders.GetValueOrDefault(holder) + 1;
        if (samples++ < 3)
        {
            for (var a = address; referrer.TryGetValue(a, out var up) && a != 0; a = up)
            {
                Console.WriteLine($"  <- {heap.GetObjectType(up)?.Name}");
            }
            Console.WriteLine("  --");
        }
    }
    foreach (var (name, count) in holders.OrderByDescending(h => h.Value))
    {
        Console.WriteLine($"{count,9}  {name}");
    }
    return 0;
}

var stats = new Dictionary<(string Generation, bool Live, string Type), (long Count, long Bytes)>();
var strings = new Dictionary<string, int>();
foreach (var segment in heap.Segments)
{
    foreach (var obj in segment.EnumerateObjects())
    {
        if (!obj.IsValid || obj.IsFree)
        {
            continue;
        }
        var generation = segment.GetGeneration(obj.Address).ToString();
        var isLive = live.Contains(obj.Address);
        var type = obj.Type?.Name ?? "?";
        var key = (generation, isLive, type);
        var (count, bytes) = stats.GetValueOrDefault(key);
        stats[key] = (count + 1, bytes + (long)obj.Size);
        if (option == "--strings" && !isLive && type == "System.String" && generation == "Generation2")
        {
            var text = obj.AsString(40) ?? "";
            var shape = $"{text.Length,4} chars  {(text.Length > 16 ? text[..16] + "..." : text)}";
            strings[shape] = strings.GetValueOrDefault(shape) + 1;
        }
    }
}
if (option == "--strings")
{
    foreach (var (shape, count) in strings.OrderByDescending(s => s.Value).Take(25))
    {
        Console.WriteLine($"{count,9}  {shape}");
    }
    return 0;
}
var top = args.Length > 2 && int.TryParse(args[2], out var n) ? n : 15;
foreach (var group in stats.GroupBy(s => (s.Key.Generation, s.Key.Live)).OrderBy(g => g.Key.Generation).ThenBy(g => g.Key.Live))
{
    Console.WriteLine($"{group.Key.Generation} {(group.Key.Live ? "live" : "dead")}: {group.Sum(s => s.Value.Bytes) / 1e6:F1} MB in {group.Sum(s => s.Value.Count):N0} objects");
    foreach (var (key, (count, bytes)) in group.OrderByDescending(s => s.Value.Bytes).Take(top))
    {
        Console.WriteLine($"  {bytes / 1024.0,9:F0} KB {count,9:N0}  {key.Type}");
    }
}
return 0;
