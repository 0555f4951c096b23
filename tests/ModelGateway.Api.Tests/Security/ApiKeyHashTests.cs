using System.Security.Cryptography;
using System.Text;
using ModelGateway.Api.Tenancy;

namespace ModelGateway.Api.Tests.Security;

/// <summary>
/// The key hash the cache looks up and Postgres stores: SHA-256 of the key's UTF-8, the same bytes whichever path computes it
/// (stored hashes of existing keys must keep matching), from any thread.
/// </summary>
public sealed class ApiKeyHashTests
{
    public static TheoryData<string> Keys => new()
    {
        "sk-dev-local",
        "",
        "sk-mg-" + new string('x', 43),
        "sk-ünïcödé-キー-🔑",
        new string('k', 5000), // past the stack buffer
    };

    [Theory]
    [MemberData(nameof(Keys))]
    public void The_hash_is_SHA_256_of_the_key_and_the_cache_value_holds_the_same_bytes(string key)
    {
        var expected = SHA256.HashData(Encoding.UTF8.GetBytes(key));
        Assert.Equal(expected, ApiKeys.Hash(key));
        Assert.Equal(expected, ApiKeys.HashOf(key).ToArray());
        Assert.Equal(ApiKeys.HashOf(key), KeyHash.Read(expected));
    }

    [Fact]
    public void Keys_differing_in_one_character_hash_apart_and_compare_unequal()
    {
        Assert.NotEqual(ApiKeys.HashOf("sk-test-a"), ApiKeys.HashOf("sk-test-b"));
        Assert.True(ApiKeys.FixedTimeEquals("sk-admin-0123456789", "sk-admin-0123456789"));
        Assert.False(ApiKeys.FixedTimeEquals("sk-admin-0123456789", "sk-admin-0123456788"));
        Assert.False(ApiKeys.FixedTimeEquals("sk-admin-0123456789", "sk-admin-0123456789 "));
    }

    [Fact]
    public async Task Hashing_on_many_threads_at_once_gives_each_key_its_own_hash()
    {
        // Each thread reuses one hasher: a hasher left mid-digest by one call would corrupt the next on that thread.
        var keys = Enumerable.Range(0, 64).Select(i => $"sk-parallel-{i}-{new string('p', i * 20)}").ToArray();
        var expected = keys.Select(k => SHA256.HashData(Encoding.UTF8.GetBytes(k))).ToArray();
        await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(() =>
        {
            for (var round = 0; round < 200; round++)
            {
                for (var i = 0; i < keys.Length; i++)
                {
                    Assert.Equal(expected[i], ApiKeys.HashOf(keys[i]).ToArray());
                }
            }
        }, TestContext.Current.CancellationToken)));
    }
}
