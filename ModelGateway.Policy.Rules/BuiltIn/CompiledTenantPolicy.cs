using System.Collections.Concurrent;
using System.Globalization;
using System.Text.RegularExpressions;

namespace ModelGateway.Policy.Rules.BuiltIn;

/// <summary>
/// A <see cref="TenantPolicy"/> prepared once for evaluation: time zone resolved, windows parsed to minutes,
/// deny patterns compiled. Parts that cannot be prepared are kept as problems that deny (fail closed).
/// </summary>
internal sealed class CompiledTenantPolicy
{
    /// <summary>
    /// A match per pattern may not take longer than this. The non-backtracking engine is linear in the text,
    /// so only a very large text hits it; a timeout denies.
    /// </summary>
    internal static readonly TimeSpan PatternTimeout = TimeSpan.FromMilliseconds(100);

    // Options chosen to match OPA's RE2 (linear time, no backreferences or lookarounds) so a pattern behaves
    // the same in both engines, and so a tenant's pattern cannot make the gateway backtrack exponentially.
    private const RegexOptions PatternOptions = RegexOptions.NonBacktracking | RegexOptions.CultureInvariant;

    // Regex construction is the costly part; patterns are shared across policy instances (the Policy
    // service deserialises a fresh policy per request). Bounded so tenants cannot grow it without limit.
    private const int PatternCacheLimit = 1024;
    private static readonly ConcurrentDictionary<string, Regex> PatternCache = new(StringComparer.Ordinal);

    private static readonly string[] DayNames = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

    private CompiledTenantPolicy(TimeZoneInfo? timeZone, Window[] windows, Pattern[] patterns, string[] problems)
    {
        TimeZone = timeZone;
        Windows = windows;
        Patterns = patterns;
        Problems = problems;
    }

    /// <summary>Null when the policy names an unknown time zone (time windows then deny).</summary>
    public TimeZoneInfo? TimeZone { get; }

    public Window[] Windows { get; }

    public Pattern[] Patterns { get; }

    public string[] Problems { get; }

    /// <summary>
    /// Bounds in minutes since local midnight; <see cref="DayMask"/> bit 0 = Sunday, null = every day (a
    /// list naming only unknown days matches no day, as in the Rego policy).
    /// </summary>
    internal readonly record struct Window(int Start, int End, int? DayMask, bool Valid)
    {
        public bool Contains(int minute, DayOfWeek day)
        {
            if (!Valid || (DayMask is { } mask && (mask & (1 << (int)day)) == 0))
            {
                return false;
            }

            // End at or before start wraps past midnight (22:00-06:00); equal bounds cover the whole day.
            return Start < End ? minute >= Start && minute < End : minute >= Start || minute < End;
        }
    }

    /// <summary>A deny pattern; <see cref="Regex"/> is null when the pattern is invalid (it then denies).</summary>
    internal readonly record struct Pattern(int Number, Regex? Regex);

    public static CompiledTenantPolicy Compile(TenantPolicy policy)
    {
        List<string>? problems = null;

        TimeZoneInfo? timeZone = TimeZoneInfo.Utc;
        if (!string.IsNullOrEmpty(policy.TimeZone) && !TimeZoneInfo.TryFindSystemTimeZoneById(policy.TimeZone, out timeZone))
        {
            (problems ??= []).Add($"time zone '{policy.TimeZone}' is unknown");
            timeZone = null;
        }

        var windows = policy.TimeWindows is { Count: > 0 } w ? new Window[w.Count] : [];
        for (var i = 0; i < windows.Length; i++)
        {
            windows[i] = CompileWindow(policy.TimeWindows![i], i + 1, ref problems);
        }

        var patterns = policy.DenyPatterns is { Count: > 0 } p ? new Pattern[p.Count] : [];
        for (var i = 0; i < patterns.Length; i++)
        {
            var regex = GetRegex(policy.DenyPatterns![i]);
            if (regex is null)
            {
                (problems ??= []).Add($"deny pattern #{i + 1} is invalid");
            }

            patterns[i] = new Pattern(i + 1, regex);
        }

        if (policy.MaxOutputTokens is <= 0)
        {
            (problems ??= []).Add("max_output_tokens must be positive");
        }

        if (policy.MaxUsdPerRequest is < 0)
        {
            (problems ??= []).Add("max_usd_per_request must not be negative");
        }

        return new CompiledTenantPolicy(timeZone, windows, patterns, problems?.ToArray() ?? []);
    }

    private static Window CompileWindow(PolicyTimeWindow window, int number, ref List<string>? problems)
    {
        int? mask = window.Days is { Count: > 0 } ? 0 : null;
        foreach (var day in window.Days ?? [])
        {
            var index = Array.FindIndex(DayNames, d => string.Equals(d, day, StringComparison.OrdinalIgnoreCase));
            if (index < 0)
            {
                (problems ??= []).Add($"time window #{number} names an unknown day '{day}'");
                continue;
            }

            mask |= 1 << index;
        }

        if (!TryParseMinutes(window.Start, out var start) || start == 24 * 60 || !TryParseMinutes(window.End, out var end))
        {
            (problems ??= []).Add($"time window #{number} needs HH:MM bounds");
            return new Window(0, 0, null, Valid: false);
        }

        return new Window(start, end, mask, Valid: true);
    }

    /// <summary>Parses <c>H:MM</c> or <c>HH:MM</c>, 00:00 to 24:00.</summary>
    internal static bool TryParseMinutes(string? text, out int minutes)
    {
        minutes = 0;
        var colon = text?.IndexOf(':') ?? -1;
        if (colon is < 1 or > 2 || text!.Length != colon + 3
            || !int.TryParse(text.AsSpan(0, colon), NumberStyles.None, CultureInfo.InvariantCulture, out var hours)
            || !int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var mins)
            || hours > 24 || mins > 59 || (hours == 24 && mins != 0))
        {
            return false;
        }

        minutes = (hours * 60) + mins;
        return true;
    }

    private static Regex? GetRegex(string? pattern)
    {
        if (pattern is null)
        {
            return null;
        }

        if (PatternCache.TryGetValue(pattern, out var cached))
        {
            return cached;
        }

        Regex regex;
        try
        {
            regex = new Regex(pattern, PatternOptions, PatternTimeout);
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException)
        {
            // NotSupportedException: a construct the non-backtracking engine (like RE2) does not have.
            return null;
        }

        if (PatternCache.Count < PatternCacheLimit)
        {
            PatternCache.TryAdd(pattern, regex);
        }

        return regex;
    }
}
