using System.Net;
using ModelGateway.Api.Tests.Support;

namespace ModelGateway.Api.Tests.Budgets;

/// <summary>One replica with a Postgres server of its own (this test stops it) and a small ledger buffer.</summary>
public sealed class OwnPostgresReplica : BudgetCluster
{
    public const string Key = "sk-durable-0123456789";
    public const int Capacity = 15;

    protected override bool OwnPostgres => true;

    protected override int Replicas => 1;

    protected override IEnumerable<KeyValuePair<string, string?>> Tenants => new Dictionary<string, string?>
    {
        ["Tenancy:Seed:1:Id"] = "durable",
        ["Tenancy:Seed:1:ApiKeys:0"] = Key,
        ["Tenancy:Seed:1:BudgetUsd"] = "1",
        ["Ledger:Capacity"] = Capacity.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["Ledger:MaxRetryDelay"] = "00:00:00.200",
    };
}

public sealed class LedgerDurabilityTests(OwnPostgresReplica cluster) : IClassFixture<OwnPostgresReplica>
{
    [Fact]
    public async Task Rows_wait_while_Postgres_is_down_new_work_is_refused_when_the_buffer_is_full_and_nothing_is_lost()
    {
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await SendAsync($"before {i}")).StatusCode);
        }
        await cluster.LedgerAsync("durable", 5);

        cluster.Postgres.Stop();
        var served = 0;
        HttpResponseMessage? refused = null;
        for (var i = 0; i < OwnPostgresReplica.Capacity + 5 && refused is null; i++)
        {
            var response = await SendAsync($"during {i}");
            if (response.StatusCode == HttpStatusCode.OK)
            {
                served++;
            }
            else
            {
                refused = response;
            }
        }
        // The buffer holds exactly its capacity of rows; the next request is refused rather than a row lost.
        Assert.Equal(OwnPostgresReplica.Capacity, served);
        Assert.NotNull(refused);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Equal("ledger_unavailable", (await GatewayApp.ReadJsonAsync(refused)).GetProperty("error").GetProperty("code").GetString());

        // A killed postmaster's children can hold the port for a moment: retry the start briefly.
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await Task.Delay(500, TestContext.Current.CancellationToken);
                await cluster.Postgres.StartAgainAsync();
                break;
            }
            catch (Exception) when (attempt < 10)
            {
            }
        }
        var (rows, cost) = await cluster.LedgerAsync("durable", 5 + served);
        Assert.Equal(5 + served, rows);
        Assert.Equal(cost, await cluster.RedisSpentAsync("durable", "total"));
        Assert.Equal(HttpStatusCode.OK, (await SendAsync("after")).StatusCode);
    }

    private async Task<HttpResponseMessage> SendAsync(string content)
    {
        var response = await cluster.A.SendAsync(BudgetCluster.Chat(OwnPostgresReplica.Key, content, stream: false));
        await response.Content.LoadIntoBufferAsync(TestContext.Current.CancellationToken);
        return response;
    }
}
