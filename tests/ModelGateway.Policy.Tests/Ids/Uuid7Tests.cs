using ModelGateway.Policy.Rules;

namespace ModelGateway.Policy.Tests.Ids;

public sealed class Uuid7Tests
{
    [Fact]
    public void An_id_is_a_version_7_uuid_carrying_its_timestamp()
    {
        var at = DateTimeOffset.FromUnixTimeMilliseconds(0x0123_4567_89AB);

        var id = Uuid7.New(at);

        var text = id.ToString("N");
        Assert.Equal("0123456789ab", text[..12]); // 48-bit big-endian milliseconds
        Assert.Equal('7', text[12]); // version
        Assert.Contains(text[16], "89ab"); // variant 10
        Assert.Equal(7, id.Version);
    }

    [Fact]
    public void Ids_sort_by_time_and_do_not_repeat()
    {
        var start = DateTimeOffset.UtcNow;
        var ids = new List<Guid>();
        for (var ms = 0; ms < 50; ms++)
        {
            for (var i = 0; i < 2_000; i++)
            {
                ids.Add(Uuid7.New(start.AddMilliseconds(ms)));
            }
        }

        Assert.Equal(ids.Count, ids.Distinct().Count());
        // Ordered as Postgres orders uuid (byte-wise), which is the order of the "N" text: by millisecond first.
        var text = ids.Select(g => g.ToString("N")).ToList();
        for (var i = 2_000; i < text.Count; i += 2_000)
        {
            Assert.True(string.CompareOrdinal(text[i - 2_000][..12], text[i][..12]) < 0);
            Assert.True(text.Skip(i - 2_000).Take(2_000).All(t => string.CompareOrdinal(t, text[i]) < 0));
        }
    }

    [Fact]
    public void Threads_draw_different_random_bits()
    {
        var at = DateTimeOffset.UtcNow;
        var ids = new System.Collections.Concurrent.ConcurrentBag<Guid>();
        Parallel.For(0, 8, _ =>
        {
            for (var i = 0; i < 10_000; i++)
            {
                ids.Add(Uuid7.New(at)); // one millisecond for all: only the random bits tell them apart
            }
        });

        Assert.Equal(80_000, ids.Distinct().Count());
    }
}
