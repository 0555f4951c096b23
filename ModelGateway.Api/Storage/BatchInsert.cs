using Microsoft.Extensions.ObjectPool;
using Npgsql;
using NpgsqlTypes;

namespace ModelGateway.Api.Storage;

/// <summary>
/// A batch as an insert's array parameters, one <see cref="BatchColumn{T}"/> per parameter; cleared when returned. A sink lists
/// its columns once (<see cref="All"/>), and binding and clearing both go through that list, so a column that is bound is
/// always cleared: no record's values carry over into the next batch.
/// </summary>
internal abstract class BatchColumns<TRecord> : IResettable
{
    /// <summary>Every column of the insert, set by the sink's constructor.</summary>
    protected IBatchColumn[] All { get; init; } = [];

    public abstract void Fill(IReadOnlyList<TRecord> batch);

    public void Bind(NpgsqlParameterCollection parameters)
    {
        foreach (var column in All)
        {
            column.Bind(parameters);
        }
    }

    public virtual bool TryReset()
    {
        foreach (var column in All)
        {
            column.Clear();
        }
        return true;
    }
}

internal interface IBatchColumn
{
    void Bind(NpgsqlParameterCollection parameters);

    void Clear();
}

/// <summary>One array parameter of an insert (Npgsql writes a <see cref="List{T}"/> as an array), kept and refilled.</summary>
internal sealed class BatchColumn<T>(string parameter, NpgsqlDbType type) : IBatchColumn
{
    private readonly List<T> _values = [];

    public void Add(T value) => _values.Add(value);

    public void Bind(NpgsqlParameterCollection parameters) => parameters.AddWithValue(parameter, NpgsqlDbType.Array | type, _values);

    public void Clear() => _values.Clear();
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
