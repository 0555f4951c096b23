using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using ModelGateway.Api.Tests.Support;
using ModelGateway.Testing;

namespace ModelGateway.Api.Tests.FrontDoor;

/// <summary>The Api forwards /realtime/* and /api/opa/decide to a stand-in for Realtime and Policy that echoes what it got.</summary>
public sealed class FrontDoorFixture : GatewayFixture
{
    private WebApplication? _stub;
    private string _stubUrl = "";

    protected override IEnumerable<KeyValuePair<string, string?>> ExtraSettings => new Dictionary<string, string?>
    {
        ["FrontDoor:RealtimeUrl"] = _stubUrl,
        ["FrontDoor:PolicyUrl"] = _stubUrl,
    };

    public override async ValueTask InitializeAsync()
    {
        var port = FreePort.Get();
        _stubUrl = $"http://127.0.0.1:{port}";
        // Built under the assembly's start gate: a factory starting meanwhile could take this host for its own (see TestHostStart).
        lock (TestHostStart.Gate)
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.WebHost.ConfigureKestrel(k => k.Listen(System.Net.IPAddress.Loopback, port));
            _stub = builder.Build();
        }
        _stub.Map("/{**path}", async (HttpContext ctx) =>
        {
            using var reader = new StreamReader(ctx.Request.Body);
            var body = await reader.ReadToEndAsync();
            ctx.Response.ContentType = ctx.Request.ContentType ?? "text/plain";
            await ctx.Response.WriteAsync($"{ctx.Request.Method} {ctx.Request.Path} auth={ctx.Request.Headers.Authorization} body={body}");
        });
        await _stub.StartAsync();
        await base.InitializeAsync();
    }

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        if (_stub is not null)
        {
            await _stub.DisposeAsync();
        }
    }
}

public sealed class FrontDoorTests(FrontDoorFixture fx) : IClassFixture<FrontDoorFixture>
{
    [Theory]
    [InlineData("/realtime/offer", "application/sdp", "v=0")]
    [InlineData("/api/opa/decide", "application/json", "{\"input\":{}}")]
    public async Task Requests_are_forwarded_with_their_body_and_credentials(string path, string contentType, string body)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(body, Encoding.UTF8, contentType) };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "sk-some-key");
        using var response = await fx.Gateway.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal($"POST {path} auth=Bearer sk-some-key body={body}", text);
    }

    [Fact]
    public async Task Ice_servers_are_forwarded_too()
    {
        using var response = await fx.Gateway.Client.GetAsync("/realtime/ice-servers", TestContext.Current.CancellationToken);
        Assert.StartsWith("GET /realtime/ice-servers", await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
    }
}
