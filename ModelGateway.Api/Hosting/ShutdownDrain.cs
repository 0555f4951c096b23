using Microsoft.Extensions.Options;
using ModelGateway.Api.Errors;

namespace ModelGateway.Api.Hosting;

/// <summary>
/// Graceful shutdown for long requests. When the host begins to stop, Kestrel stops accepting connections and waits for
/// requests in flight; this fires <see cref="Token"/> once <see cref="ServerLimitsOptions.DrainTimeout"/> has passed, and
/// <see cref="ShutdownDrainMiddleware"/> makes that token part of every request's <c>RequestAborted</c>, so streams still
/// running are cancelled upstream, settled and billed like a client disconnect, and then ended with an error event
/// instead of a torn connection. The rest of the host's shutdown timeout is left to the ledger and trace writers.
/// </summary>
internal sealed class ShutdownDrain : IHostedService, IDisposable
{
    private readonly CancellationTokenSource _drained = new();
    private readonly TimeSpan _timeout;
    private readonly IHostApplicationLifetime _lifetime;
    private CancellationTokenRegistration _registration;

    public ShutdownDrain(IHostApplicationLifetime lifetime, IOptions<ServerLimitsOptions> options)
    {
        _lifetime = lifetime;
        _timeout = options.Value.DrainTimeout;
    }

    public CancellationToken Token => _drained.Token;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _registration = _lifetime.ApplicationStopping.Register(() => _drained.CancelAfter(_timeout));
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public void Dispose()
    {
        _registration.Dispose();
        _drained.Dispose();
    }
}

internal sealed class ShutdownDrainMiddleware(RequestDelegate next, ShutdownDrain drain)
{
    private static readonly byte[] ShuttingDown = new OpenAIError(503,
        "The gateway is shutting down and ended this stream; the answer is incomplete. Retry the request.",
        "api_error", null, "server_shutting_down").ToUtf8Bytes();

    public async Task InvokeAsync(HttpContext context)
    {
        var clientAborted = context.RequestAborted;
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(clientAborted, drain.Token);
        context.RequestAborted = linked.Token;
        try
        {
            await next(context);
        }
        finally
        {
            context.RequestAborted = clientAborted;
        }
        if (drain.Token.IsCancellationRequested && !clientAborted.IsCancellationRequested && context.Response.HasStarted
            && context.Response.ContentType?.StartsWith("text/event-stream", StringComparison.Ordinal) == true)
        {
            // Same shape as an upstream failure mid-stream: an error event and no [DONE], which SDKs raise as an error.
            try
            {
                await context.Response.BodyWriter.WriteAsync("data: "u8.ToArray(), clientAborted);
                await context.Response.BodyWriter.WriteAsync(ShuttingDown, clientAborted);
                await context.Response.BodyWriter.WriteAsync("\n\n"u8.ToArray(), clientAborted);
                await context.Response.BodyWriter.FlushAsync(clientAborted);
            }
            catch (Exception ex) when (ex is IOException or OperationCanceledException)
            {
                // The client left meanwhile: nothing to tell it.
            }
        }
    }
}
