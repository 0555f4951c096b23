using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using ModelGateway.Api.Tests.Budgets;
using ModelGateway.Api.Tests.Support;

namespace ModelGateway.Api.Tests.Reliability;

/// <summary>
/// Steady load against one replica while a test breaks a store: a few workers send small non-streamed requests, paced,
/// and record when each started and ended and how it was answered, so the test can count what was served during the fault.
/// </summary>
internal sealed class OutageDrill(GatewayApp app, string key, int workers = 4, int pauseMs = 20) : IAsyncDisposable
{
    internal sealed record Outcome(DateTime Started, DateTime Ended, int Status, string? Type, string? Code, bool HasRetryAfter);

    private readonly ConcurrentQueue<Outcome> _outcomes = new();
    private readonly CancellationTokenSource _stop = new();
    private Task[] _tasks = [];
    private int _sequence;

    public IReadOnlyCollection<Outcome> Outcomes => _outcomes;

    public void Start() => _tasks = Enumerable.Range(0, workers).Select(_ => Task.Run(RunAsync)).ToArray();

    public async Task WaitUntilAsync(Func<IReadOnlyCollection<Outcome>, bool> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition(_outcomes))
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new Xunit.Sdk.XunitException($"Timed out waiting for {what}; outcomes: " + Summary());
            }
            await Task.Delay(20);
        }
    }

    public string Summary() => string.Join(", ", _outcomes.GroupBy(o => $"{o.Status} {o.Code}").Select(g => $"{g.Key}: {g.Count()}"));

    private async Task RunAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            var i = Interlocked.Increment(ref _sequence);
            var started = DateTime.UtcNow;
            try
            {
                // Stopping ends the loop, never a request in flight: a request cut by the drill would be billed and traced
                // (client_disconnected) without being counted here, and the tests compare rows with outcomes exactly.
                using var response = await app.Client.SendAsync(BudgetCluster.Chat(key, $"request {i % 1000:000}", stream: false), CancellationToken.None);
                var text = await response.Content.ReadAsStringAsync(CancellationToken.None);
                string? type = null, code = null;
                if (response.StatusCode != HttpStatusCode.OK)
                {
                    var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
                    (type, code) = (error.GetProperty("type").GetString(), error.GetProperty("code").GetString());
                }
                _outcomes.Enqueue(new Outcome(started, DateTime.UtcNow, (int)response.StatusCode, type, code, response.Headers.RetryAfter is not null));
                await Task.Delay(pauseMs, _stop.Token);
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
            }
        }
    }

    /// <summary>Stops the workers and waits for them (idempotent).</summary>
    public async ValueTask DisposeAsync()
    {
        if (!_stop.IsCancellationRequested)
        {
            await _stop.CancelAsync();
        }
        await Task.WhenAll(_tasks);
    }
}
