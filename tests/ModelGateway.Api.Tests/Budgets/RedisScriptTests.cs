using System.Reflection;
using ModelGateway.Api.Budgets;
using StackExchange.Redis;

namespace ModelGateway.Api.Tests.Budgets;

public sealed class RedisScriptTests
{
    [Fact]
    public async Task A_write_that_races_a_failing_connection_is_a_connection_failure_not_an_unhandled_error()
    {
        // What StackExchange.Redis threw when Redis was killed under load (RedisOutageTests saw two 500s from it): admission
        // handles connection failures (fail open or closed) but not InvalidOperationException.
        var db = DispatchProxy.Create<IDatabase, CompletedWriterDatabase>();
        var ex = await Assert.ThrowsAsync<RedisConnectionException>(() => AdmissionScripts.Admit.EvaluateAsync(db, [], []));
        Assert.Equal(ConnectionFailureType.SocketFailure, ex.FailureType);
        Assert.IsType<InvalidOperationException>(ex.InnerException);
    }

    /// <summary>An <see cref="IDatabase"/> whose script calls fail as a completed pipe writer does.</summary>
    public class CompletedWriterDatabase : DispatchProxy
    {
        protected override object? Invoke(MethodInfo? targetMethod, object?[]? args) => targetMethod?.Name switch
        {
            "get_Database" => 0,
            "ScriptEvaluateAsync" => Task.FromException<RedisResult>(new InvalidOperationException("Writing is not allowed after writer was completed.")),
            _ => throw new NotSupportedException(targetMethod?.Name),
        };
    }
}
