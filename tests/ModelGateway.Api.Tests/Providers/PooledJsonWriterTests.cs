using System.Text;
using ModelGateway.Api.Providers;

namespace ModelGateway.Api.Tests.Providers;

/// <summary>The reused writer behind upstream bodies and translated answers: a body never carries another body's bytes.</summary>
public sealed class PooledJsonWriterTests
{
    [Fact]
    public void A_body_abandoned_mid_way_leaves_nothing_for_the_next()
    {
        for (var i = 0; i < 3; i++)
        {
            // What a writer left when an UnsupportedRequestException stopped it half way through a request.
            using (var abandoned = PooledJsonWriter.Rent(relaxedEscaping: true))
            {
                abandoned.Writer.WriteStartObject();
                abandoned.Writer.WriteStartArray("messages");
                abandoned.Writer.WriteStringValue("half");
            }

            using var body = PooledJsonWriter.Rent(relaxedEscaping: true);
            body.Writer.WriteStartObject();
            body.Writer.WriteNumber("n", i);
            body.Writer.WriteEndObject();
            Assert.Equal($$"""{"n":{{i}}}""", Encoding.UTF8.GetString(body.ToArray()));
        }
    }

    [Fact]
    public void Relaxed_and_default_escaping_come_from_their_own_writers()
    {
        string Write(bool relaxed)
        {
            using var body = PooledJsonWriter.Rent(relaxed);
            body.Writer.WriteStringValue("é <b>");
            return Encoding.UTF8.GetString(body.ToArray());
        }

        Assert.Equal("\"é <b>\"", Write(relaxed: true));
        Assert.Equal("\"\\u00E9 \\u003Cb\\u003E\"", Write(relaxed: false));
        Assert.Equal("\"é <b>\"", Write(relaxed: true));
    }

    [Fact]
    public void A_body_larger_than_what_is_kept_is_written_whole_and_the_next_is_small_again()
    {
        var large = new string('x', PooledJsonWriter.MaxRetainedBytes * 2);
        using (var body = PooledJsonWriter.Rent(relaxedEscaping: false))
        {
            body.Writer.WriteStringValue(large);
            Assert.Equal(large.Length + 2, body.ToArray().Length);
        }
        using var next = PooledJsonWriter.Rent(relaxedEscaping: false);
        next.Writer.WriteNumberValue(1);
        Assert.Equal("1", Encoding.UTF8.GetString(next.ToArray()));
    }
}
