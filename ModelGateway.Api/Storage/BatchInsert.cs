using Microsoft.Extensions.ObjectPool;
using Npgsql;

namespace ModelGateway.Api.Storage;

/// <summary>A batch as an insert's array parameters (Npgsql writes a <see cref="List{T}"/> as an array); cleared when returned.</summary>
internal abstract class BatchColumns<TRecord> : IResettable
{
    public abstract void Fill(IReadOnlyList<TRecord> batch);

    public abstract void Bind(NpgsqlParameterCollection parameters);

    public abstract bool TryReset();
}

/// <summary>
/// One sink's <c>INSERT ... SELECT FROM unnest(...)</c>: a first attempt inserts plainly, a retry skips stored rows
/// (<see cref="PostgresData.SkipStored"/>), on a kept thread (<see cref="PostgresData.ExecuteOnOwnThreadAsync"/>). The columns
/// are kept and refilled, one set per batch in flight: made anew for every batch, they (and the traces' attempts JSON) lived as
/// long as the insert and, under load, died in gen2 (docs/benchmark.md, session 13).
/// </summary>
internal sealed class BatchInsert<TRecord, TColumns>(NpgsqlDataSource db, string insert)
    where TColumns : BatchColumns<TRecord>, new()
{
    private readonly string _insertSkippingStored = insert + PostgresData.SkipStored;
    private readonly ObjectPool<TColumns> _columns = new DefaultObjectPool<TColumns>(new DefaultPooledObjectPolicy<TColumns>());

    public async Task WriteAsync(IReadOnlyList<TRecord> batch, bool retry, CancellationToken cancellationToken)
    {
        var columns = _columns.Get();
        try
        {
            columns.Fill(batch);
            await using var cmd = db.CreateCommand(retry ? _insertSkippingStored : insert);
            columns.Bind(cmd.Parameters);
            await PostgresData.ExecuteOnOwnThreadAsync(cmd, cancellationToken);
        }
        finally
        {
            _columns.Return(columns); // cleared on return: no record's text is held past its batch
        }
    }
}
