namespace ModelGateway.Api.Budgets;

/// <summary>
/// The budget period a moment falls in, in UTC: <c>daily</c> (calendar day), <c>monthly</c> (calendar month) or
/// <c>total</c> (never resets). <see cref="Id"/> names the Redis keys, so a new period starts from fresh counters.
/// </summary>
internal readonly record struct BudgetPeriod(string Id, DateTimeOffset Start, DateTimeOffset End)
{
    public static readonly string[] Names = ["daily", "monthly", "total"];

    public static bool IsValid(string? name) => name is "daily" or "monthly" or "total";

    public static BudgetPeriod For(string name, DateTimeOffset now)
    {
        var utc = now.UtcDateTime;
        switch (name)
        {
            case "daily":
                var day = new DateTimeOffset(utc.Year, utc.Month, utc.Day, 0, 0, 0, TimeSpan.Zero);
                return new BudgetPeriod("d" + day.ToString("yyyyMMdd", System.Globalization.CultureInfo.InvariantCulture), day, day.AddDays(1));
            case "monthly":
                var month = new DateTimeOffset(utc.Year, utc.Month, 1, 0, 0, 0, TimeSpan.Zero);
                return new BudgetPeriod("m" + month.ToString("yyyyMM", System.Globalization.CultureInfo.InvariantCulture), month, month.AddMonths(1));
            default:
                return new BudgetPeriod("total", DateTimeOffset.UnixEpoch, DateTimeOffset.MaxValue);
        }
    }

    public bool Resets => End != DateTimeOffset.MaxValue;

    /// <summary>Redis TTL for the period's counters: a day past its end (0 = keep), so old periods clean themselves up.</summary>
    public long KeyTtlMs(DateTimeOffset now) => Resets ? (long)(End - now + TimeSpan.FromDays(1)).TotalMilliseconds : 0;
}
