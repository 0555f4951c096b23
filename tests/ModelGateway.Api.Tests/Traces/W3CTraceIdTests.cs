using System.Diagnostics;
using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Http;
using ModelGateway.Api.Routing;
using ModelGateway.Api.Tracing;

namespace ModelGateway.Api.Tests.Traces;

/// <summary>The trace id as the records keep it: the same text as the activity's, and nothing of the request held.</summary>
public sealed class W3CTraceIdTests
{
    [Fact]
    public void Its_text_is_the_activitys_and_reads_back()
    {
        for (var i = 0; i < 100; i++)
        {
            var id = ActivityTraceId.CreateRandom();
            var value = W3CTraceId.From(id);
            Assert.Equal(id.ToHexString(), value.ToString());
            Assert.Equal(value, W3CTraceId.Parse(id.ToHexString()));
        }
        Assert.Equal("0102030405060708090a0b0c0d0e0f10", new W3CTraceId(0x0102030405060708, 0x090a0b0c0d0e0f10).ToString());
    }

    [Fact]
    public void A_request_has_its_activitys_id_and_without_one_an_id_drawn_once()
    {
        var previous = Activity.Current;
        using var activity = new Activity("request").SetIdFormat(ActivityIdFormat.W3C).Start();
        try
        {
            var context = new DefaultHttpContext();
            Assert.Equal(activity.TraceId.ToHexString(), W3CTraceId.Of(context).ToString());
            Assert.Same(activity.TraceId.ToHexString(), W3CTraceId.TextOf(context));

            Activity.Current = null;
            var drawn = W3CTraceId.Of(context);
            Assert.NotEqual(default, drawn);
            Assert.Equal(drawn, W3CTraceId.Of(context));
            Assert.Equal(drawn.ToString(), W3CTraceId.TextOf(context));
            Assert.Matches("^[0-9a-f]{32}$", W3CTraceId.TextOf(context));
            Assert.NotEqual(drawn, W3CTraceId.Of(new DefaultHttpContext()));
        }
        finally
        {
            Activity.Current = previous;
        }
    }

    /// <summary>
    /// What made backlogs grow gen2 for good: a record waiting for its batch kept its request's trace id string (and its
    /// attempts' array) alive, so the GC promoted them with it. Built as the gateway builds it, a record keeps neither.
    /// </summary>
    [Fact]
    public void A_waiting_trace_record_keeps_nothing_of_its_request_alive()
    {
        var (record, text) = Recorded();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();

        Assert.False(text.IsAlive, "the activity's trace id string outlived its request");
        Assert.Matches("^[0-9a-f]{32}$", record.TraceId.ToString());
        Assert.Equal("openrouter", record.Attempts[0].Provider);
        Assert.False(RuntimeHelpers.IsReferenceOrContainsReferences<W3CTraceId>());
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static (TraceRecord Record, WeakReference Text) Recorded()
    {
        var id = ActivityTraceId.CreateRandom();
        var attempts = default(AttemptLog).Append(new AttemptRecord(1, "openrouter", "gpt-4o-mini", 200, 12.5, null));
        var record = new TraceRecord(Guid.NewGuid(), W3CTraceId.From(id), DateTimeOffset.UtcNow, "t1", "k1", "chat", attempts,
            "openrouter", "gpt-4o-mini", "ok", 200, 3, 12.5, 10, 5, 0, 42, false, null);
        return (record, new WeakReference(id.ToHexString()));
    }
}
