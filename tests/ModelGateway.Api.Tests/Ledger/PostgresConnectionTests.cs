using Microsoft.Extensions.DependencyInjection;
using ModelGateway.Api.Storage;
using ModelGateway.Api.Tests.Support;
using ModelGateway.Api.Tracing;
using ModelGateway.Policy.Rules;
using ModelGateway.Testing;
using Npgsql;

namespace ModelGateway.Api.Tests.Ledger;

/// <summary>
/// The gateway's Postgres connections prepare what they run often and skip the reset between uses (<see cref="PostgresData.Tune"/>),
/// unless the operator's connection string says otherwise.
/// </summary>
public sealed class PostgresConnectionTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData("Host=db;Username=u", PostgresData.AutoPrepared, true)]
    [InlineData("Host=db;Max Auto Prepare=0", 0, true)] // turned off on purpose (an old PgBouncer in transaction mode)
    [InlineData("Host=db;maxautoprepare=5", 5, true)]
    [InlineData("Host=db;No Reset On Close=false", PostgresData.AutoPrepared, false)]
    [InlineData("Host=db;NoResetOnClose=false;Max Auto Prepare=7", 7, false)]
    public void Tuning_fills_in_what_the_connection_string_leaves_out_and_keeps_what_it_says(string given, int autoPrepare, bool noReset)
    {
        var connection = new NpgsqlConnectionStringBuilder(given);
        PostgresData.Tune(connection);
        Assert.Equal(autoPrepare, connection.MaxAutoPrepare);
        Assert.Equal(noReset, connection.NoResetOnClose);
        Assert.Equal("db", connection.Host);
    }

    [Fact]
    public async Task A_tuned_connection_keeps_the_trace_insert_prepared_after_a_few_batches_and_an_untuned_one_does_not()
    {
        var server = await PostgresServer.GetSharedAsync();
        var database = await server.CreateDatabaseAsync("tuned");
        await using (var setup = NpgsqlDataSource.Create(database))
        {
            await Migrations.ApplyAsync(setup, Ct);
        }
        Assert.True(await TraceInsertPreparedAsync(database, tune: true));
        Assert.False(await TraceInsertPreparedAsync(database, tune: false));
    }

    /// <summary>Eight one-row trace batches through one pooled connection, then whether that session holds the insert prepared.</summary>
    private static async Task<bool> TraceInsertPreparedAsync(string database, bool tune)
    {
        var connection = new NpgsqlConnectionStringBuilder(database) { MaxPoolSize = 1 };
        if (tune)
        {
            PostgresData.Tune(connection);
        }
        await using var db = NpgsqlDataSource.Create(connection);
        var sink = new TraceSink(db);
        var now = DateTimeOffset.UtcNow;
        for (var i = 0; i < 8; i++)
        {
            await sink.WriteAsync([new TraceRecord(Uuid7.New(now.AddMilliseconds(i)), new W3CTraceId(1, (ulong)i), now, "t1", "k1", "chat", default, "p", "m",
                "ok", 200, null, 1, 1, 1, 0, 1, false, null)], retry: false, Ct);
        }
        await using var query = db.CreateCommand("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%INSERT INTO traces%'");
        return (long)(await query.ExecuteScalarAsync(Ct))! > 0;
    }
}

/// <summary>The gateway's own data source is the tuned one.</summary>
public sealed class GatewayPostgresConnectionTests(GatewayFixture fx) : IClassFixture<GatewayFixture>
{
    [Fact]
    public void The_gateway_data_source_prepares_statements_and_skips_the_reset()
    {
        var connection = new NpgsqlConnectionStringBuilder(fx.Gateway.Services.GetRequiredService<NpgsqlDataSource>().ConnectionString);
        Assert.Equal(PostgresData.AutoPrepared, connection.MaxAutoPrepare);
        Assert.True(connection.NoResetOnClose);
    }
}
