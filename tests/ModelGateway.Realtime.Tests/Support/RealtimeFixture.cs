using System.Net;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using ModelGateway.Realtime.Sessions;

namespace ModelGateway.Realtime.Tests.Support;

/// <summary>
/// Realtime on real Kestrel and real UDP, its Api replaced by <see cref="ApiStub"/>, coturn beside it,
/// and one headless Chromium shared by the browser tests. Timeouts are shortened so reaping is observable.
/// </summary>
public sealed class RealtimeFixture : IAsyncLifetime
{
    public static readonly TimeSpan ConsentTimeout = TimeSpan.FromSeconds(3);

    private WebApplicationFactory<Program>? _factory;

    public ApiStub Api { get; private set; } = null!;
    public Coturn Turn { get; private set; } = null!;
    public Chromium Browser { get; private set; } = null!;
    public string BaseUrl { get; private set; } = "";
    public IServiceProvider Services => _factory!.Services;
    internal SessionManager Sessions => Services.GetRequiredService<SessionManager>();

    public async ValueTask InitializeAsync()
    {
        var ct = TestContext.Current.CancellationToken;
        Api = await ApiStub.StartAsync();
        Turn = await Coturn.StartAsync(ct);
        var factory = new WebApplicationFactory<Program>().WithWebHostBuilder(b =>
        {
            b.UseEnvironment("Development");
            b.UseSetting("Logging:LogLevel:Default", "Warning");
            b.UseSetting("Logging:LogLevel:ModelGateway", "Information");
            b.UseSetting("Realtime:ApiBaseUrl", Api.BaseUrl);
            b.UseSetting("Realtime:CandidateAddresses:0", "127.0.0.1");
            b.UseSetting("Realtime:BindAddress", "127.0.0.1");
            b.UseSetting("Realtime:ConsentTimeout", ConsentTimeout.ToString());
            b.UseSetting("Realtime:ConnectTimeout", "00:00:10");
            b.UseSetting("Realtime:ReapInterval", "00:00:00.250");
            b.UseSetting("Realtime:MessageBurst", "200");
            b.UseSetting("Realtime:MessagesPerSecond", "100");
            b.UseSetting("Realtime:Turn:Urls:0", Turn.Url);
            b.UseSetting("Realtime:Turn:Secret", Coturn.Secret);
        });
        factory.UseKestrel(o => o.Listen(IPAddress.Loopback, 0));
        factory.StartServer();
        _factory = factory;
        BaseUrl = factory.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        Browser = await Chromium.StartAsync(ct);
    }

    public HttpClient CreateClient() => new() { BaseAddress = new Uri(BaseUrl) };

    /// <summary>Waits until no session is open (sessions of earlier tests are closed by the browser or reaped).</summary>
    public async Task WaitForNoSessionsAsync(TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (Sessions.Count > 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100, TestContext.Current.CancellationToken);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Browser is not null)
        {
            await Browser.DisposeAsync();
        }
        if (_factory is not null)
        {
            await _factory.DisposeAsync();
        }
        if (Turn is not null)
        {
            await Turn.DisposeAsync();
        }
        if (Api is not null)
        {
            await Api.DisposeAsync();
        }
    }
}

[CollectionDefinition(Name)]
public sealed class RealtimeCollection : ICollectionFixture<RealtimeFixture>
{
    public const string Name = "Realtime server with browser";
}
