using ModelGateway.Api.Routing;

namespace ModelGateway.Api.Tests.Routing;

/// <summary>A request's attempts as a value: in order, numbered, and never changed by appending to a copy.</summary>
public sealed class AttemptLogTests
{
    private static AttemptRecord Attempt(int number, string provider, int? status = 200, string? error = null) =>
        new(number, provider, "m", status, number * 10, error);

    [Fact]
    public void Attempts_are_kept_in_order_one_or_many()
    {
        var none = default(AttemptLog);
        Assert.Empty(none);
        Assert.Throws<ArgumentOutOfRangeException>(() => none[0]);

        var one = none.Append(Attempt(1, "a", 503, "upstream_error"));
        Assert.Equal([Attempt(1, "a", 503, "upstream_error")], one);
        Assert.Throws<ArgumentOutOfRangeException>(() => one[1]);
        Assert.Throws<ArgumentOutOfRangeException>(() => one[-1]);

        var three = one.Append(Attempt(2, "b", null, "timeout")).Append(Attempt(3, "c"));
        Assert.Equal(3, three.Count);
        Assert.Equal(["a", "b", "c"], three.Select(a => a.Provider));
        Assert.Equal("timeout", three[1].ErrorType);
        Assert.Throws<ArgumentOutOfRangeException>(() => three[3]);

        // Appending made new logs: the earlier ones are as they were.
        Assert.Empty(none);
        Assert.Single(one);
        AttemptLog built = [Attempt(1, "a", 503, "upstream_error"), Attempt(2, "b", null, "timeout"), Attempt(3, "c")];
        Assert.Equal(three.ToArray(), built.ToArray());
    }

    [Fact]
    public void A_later_call_is_numbered_on_from_the_last_attempt()
    {
        AttemptLog first = [Attempt(1, "a", 503, "upstream_error"), Attempt(2, "b")];
        AttemptLog repair = [Attempt(1, "b")];

        var all = first.Then(repair);

        Assert.Equal([1, 2, 3], all.Select(a => a.Number));
        Assert.Equal(["a", "b", "b"], all.Select(a => a.Provider));
        Assert.Equal(first.ToArray(), first.Then(default).ToArray());
        Assert.Equal([1], default(AttemptLog).Then(repair).Select(a => a.Number));
    }
}
