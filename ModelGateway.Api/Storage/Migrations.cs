using Npgsql;

namespace ModelGateway.Api.Storage;

/// <summary>
/// The Postgres schema, applied at start-up. Each step runs once, in order, inside a transaction holding an advisory
/// lock, so several replicas starting together migrate exactly once.
/// </summary>
internal static class Migrations
{
    private const long LockKey = 0x4D475F4D49475241; // "MG_MIGRA"

    private static readonly string[] Steps =
    [
        """
        CREATE TABLE tenants (
            id text PRIMARY KEY,
            name text NOT NULL,
            allowed_models text[] NOT NULL DEFAULT '{}',
            max_output_tokens integer,
            max_usd_per_request_micro bigint,
            budget_micro bigint,
            budget_period text NOT NULL DEFAULT 'total',
            requests_per_minute integer,
            tokens_per_minute integer,
            policy jsonb,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE api_keys (
            id text PRIMARY KEY,
            tenant_id text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
            key_hash bytea NOT NULL UNIQUE,
            prefix text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz,
            revoked_at timestamptz
        );
        CREATE INDEX api_keys_tenant ON api_keys(tenant_id);
        """,
        // 2: the usage ledger (no foreign key to tenants: the ledger outlives a deleted tenant) and the spend reset mark.
        """
        ALTER TABLE tenants ADD COLUMN spend_reset_at timestamptz;
        CREATE TABLE usage_ledger (
            id uuid PRIMARY KEY,
            tenant_id text NOT NULL,
            key_id text NOT NULL,
            alias text NOT NULL,
            provider text,
            upstream_model text,
            input_tokens integer NOT NULL,
            output_tokens integer NOT NULL,
            cached_tokens integer NOT NULL,
            cost_micro bigint NOT NULL,
            status text NOT NULL,
            http_status integer NOT NULL,
            latency_ms double precision NOT NULL,
            trace_id text,
            stream boolean NOT NULL,
            usage_estimated boolean NOT NULL,
            redis_epoch text,
            created_at timestamptz NOT NULL,
            written_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX usage_ledger_tenant_time ON usage_ledger(tenant_id, created_at DESC);
        """,
        // 3: trace history (no foreign key, like the ledger); attempts as jsonb; keyset paging on (ts, id), newest first.
        """
        CREATE TABLE traces (
            id uuid PRIMARY KEY,
            trace_id text NOT NULL,
            ts timestamptz NOT NULL,
            tenant_id text NOT NULL,
            key_id text NOT NULL,
            alias text,
            attempts jsonb NOT NULL,
            provider text,
            upstream_model text,
            status text NOT NULL,
            http_status integer NOT NULL,
            ttft_ms double precision,
            latency_ms double precision NOT NULL,
            input_tokens integer NOT NULL,
            output_tokens integer NOT NULL,
            cached_tokens integer NOT NULL,
            cost_micro bigint NOT NULL,
            stream boolean NOT NULL,
            structured_output jsonb
        );
        CREATE INDEX traces_ts ON traces(ts DESC, id DESC);
        CREATE INDEX traces_tenant_ts ON traces(tenant_id, ts DESC, id DESC);
        CREATE INDEX traces_trace_id ON traces(trace_id);
        """,
        // 4: the trace id index as a hash index. Trace ids are random and only ever looked up by equality; a b-tree over them
        // puts each row at a random leaf (page splits, cache misses once the index outgrows shared_buffers) to keep an order
        // nothing reads. Measured with the bench at ~5,500 req/s and 2 million trace rows (docs/benchmark.md, session 8):
        // Postgres's CPU per request 51 -> 37 us (medians of five alternating 10 s runs). Building it takes a write lock on
        // traces for the length of the build (seconds per million rows).
        """
        DROP INDEX traces_trace_id;
        CREATE INDEX traces_trace_id ON traces USING hash (trace_id);
        """,
    ];

    public static async Task ApplyAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var tx = await connection.BeginTransactionAsync(cancellationToken);
        await using (var lockCmd = new NpgsqlCommand($"SELECT pg_advisory_xact_lock({LockKey})", connection, tx))
        {
            await lockCmd.ExecuteNonQueryAsync(cancellationToken);
        }
        await using (var create = new NpgsqlCommand(
                         "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
                         connection, tx))
        {
            await create.ExecuteNonQueryAsync(cancellationToken);
        }
        int current;
        await using (var versionCmd = new NpgsqlCommand("SELECT coalesce(max(version), 0) FROM schema_migrations", connection, tx))
        {
            current = Convert.ToInt32(await versionCmd.ExecuteScalarAsync(cancellationToken), System.Globalization.CultureInfo.InvariantCulture);
        }
        for (var version = current + 1; version <= Steps.Length; version++)
        {
            await using var step = new NpgsqlCommand(Steps[version - 1], connection, tx);
            await step.ExecuteNonQueryAsync(cancellationToken);
            await using var record = new NpgsqlCommand("INSERT INTO schema_migrations(version) VALUES (@v)", connection, tx);
            record.Parameters.AddWithValue("v", version);
            await record.ExecuteNonQueryAsync(cancellationToken);
        }
        await tx.CommitAsync(cancellationToken);
    }
}
