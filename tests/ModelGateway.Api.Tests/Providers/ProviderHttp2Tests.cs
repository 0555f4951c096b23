extern alias FakeUpstream;

using System.Net;
using System.Net.Security;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;
using ModelGateway.Api.Providers;
using ModelGateway.Api.Tests.Support;
using static ModelGateway.Api.Tests.Providers.ProviderTestKit;

namespace ModelGateway.Api.Tests.Providers;

/// <summary>
/// The fake upstream over TLS, offering HTTP/2 and HTTP/1.1 by ALPN as the providers' APIs do, with a certificate made for
/// the test. The tests trust that certificate alone.
/// </summary>
public sealed class FakeUpstreamOverTls : WebApplicationFactory<FakeUpstream::Program>
{
    public FakeUpstreamOverTls()
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=127.0.0.1", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(names.Build());
        using var made = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        Certificate = X509CertificateLoader.LoadPkcs12(made.Export(X509ContentType.Pfx), null);
        UseKestrel(k => k.Listen(IPAddress.Loopback, 0, listen =>
        {
            listen.Protocols = HttpProtocols.Http1AndHttp2;
            listen.UseHttps(Certificate);
        }));
    }

    public X509Certificate2 Certificate { get; }

    public Uri BaseAddress
    {
        get
        {
            lock (TestHostStart.Gate)
            {
                using var client = CreateClient(); // starts the server; only its address is used
                return client.BaseAddress!;
            }
        }
    }

    /// <summary>A client's TLS options that trust this fixture's certificate and nothing else.</summary>
    public SslClientAuthenticationOptions ClientTls() => new()
    {
        RemoteCertificateValidationCallback = (_, certificate, _, _) => certificate is not null
            && certificate.GetCertHashString() == Certificate.GetCertHashString(),
    };

    protected override void ConfigureWebHost(IWebHostBuilder builder) =>
        builder.ConfigureLogging(logging => logging.SetMinimumLevel(LogLevel.Warning));

    protected override void Dispose(bool disposing)
    {
        Certificate.Dispose();
        base.Dispose(disposing);
    }
}

/// <summary>
/// Provider calls over TLS go out as HTTP/2 when the provider offers it (ProviderHttp): a stream left early resets only its
/// own HTTP/2 stream, the provider sees it stop, and the connection serves the next call.
/// </summary>
public sealed class ProviderHttp2Tests(FakeUpstreamOverTls fake) : IClassFixture<FakeUpstreamOverTls>
{
    public static TheoryData<string> Protocols => new() { "openai", "anthropic", "llamacpp" };

    private StrongBox<int> _connections = new();

    private HttpMessageInvoker ProductionClient()
    {
        var handler = ProviderHttp.CreateHandler();
        handler.SslOptions = fake.ClientTls();
        _connections = CountConnections(handler);
        return new HttpMessageInvoker(handler);
    }

    /// <summary>The fake's record of the one call to <paramref name="model"/> over <paramref name="protocol"/>, once it has ended.</summary>
    private async Task<JsonElement> EndedCallAsync(string protocol, string model)
    {
        using var client = new HttpClient(new SocketsHttpHandler { SslOptions = fake.ClientTls() }) { BaseAddress = fake.BaseAddress };
        for (var attempt = 0; ; attempt++)
        {
            using var log = JsonDocument.Parse(await client.GetStringAsync("/_fake/requests", TestContext.Current.CancellationToken));
            var call = Assert.Single(log.RootElement.EnumerateArray(), r => r.GetProperty("protocol").GetString() == protocol
                && r.GetProperty("body").GetProperty("model").GetString() == model);
            if (call.GetProperty("completed_at").ValueKind != JsonValueKind.Null || attempt == 100)
            {
                return call.Clone();
            }
            await Task.Delay(50, TestContext.Current.CancellationToken);
        }
    }

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task A_stream_left_early_over_HTTP2_stops_the_provider_and_keeps_the_connection_for_the_next_call(string protocol)
    {
        using var http = ProductionClient();
        var left = await StreamFromFakeAsync(http, fake.BaseAddress, protocol, "fault-slow-chunks@300");
        await LeaveAfterFirstEventAsync(left);
        var next = await StreamFromFakeAsync(http, fake.BaseAddress, protocol, "fake-model");
        var answer = await ReadAllAsync(next);
        next.Dispose();
        await next.Released;

        Assert.Equal("Echo: Hello big world", string.Concat(answer.Select(e => e.ContentDelta)));
        Assert.Equal(1, _connections.Value);
        // The provider saw that stream stop before its answer was complete (its slow chunks would take seconds more).
        var stopped = await EndedCallAsync(protocol, "fault-slow-chunks@300");
        Assert.Equal("HTTP/2", stopped.GetProperty("http_version").GetString());
        Assert.True(stopped.GetProperty("aborted").GetBoolean());
    }
}
