using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using ModelGateway.Realtime.Tests.Support;

namespace ModelGateway.Realtime.Tests.Signalling;

[Collection(RealtimeCollection.Name)]
public sealed class SignallingApiTests(RealtimeFixture fixture)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>A data-channel offer as Chromium writes one (fingerprint of no real certificate: DTLS never starts here).</summary>
    internal static string Offer(bool withDataSection = true) =>
        string.Join("\r\n",
        [
            "v=0",
            "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
            "s=-",
            "t=0 0",
            "a=group:BUNDLE 0",
            "a=extmap-allow-mixed",
            "a=msid-semantic: WMS",
            withDataSection ? "m=application 9 UDP/DTLS/SCTP webrtc-datachannel" : "m=audio 9 UDP/TLS/RTP/SAVPF 111",
            "c=IN IP4 0.0.0.0",
            "a=ice-ufrag:Ab3d",
            "a=ice-pwd:0123456789abcdefghijklmn",
            "a=ice-options:trickle",
            "a=fingerprint:sha-256 " + string.Join(':', Enumerable.Range(0, 32).Select(i => i.ToString("X2"))),
            "a=setup:actpass",
            "a=mid:0",
            withDataSection ? "a=sctp-port:5000" : "a=rtpmap:111 opus/48000/2",
            withDataSection ? "a=max-message-size:262144" : "a=sendrecv",
            "",
        ]);

    private HttpClient Client(string? key = ApiStub.ValidKey)
    {
        var client = fixture.CreateClient();
        if (key is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }
        return client;
    }

    private static async Task<JsonObject> ErrorOf(HttpResponseMessage response)
    {
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync(Ct))!.AsObject();
        var error = body["error"]!.AsObject();
        Assert.NotNull((string?)error["message"]);
        Assert.NotNull((string?)error["type"]);
        Assert.True(error.ContainsKey("param") && error.ContainsKey("code"));
        return error;
    }

    private async Task AssertRejectedWithoutSession(HttpResponseMessage response, HttpStatusCode status, string code)
    {
        Assert.Equal(status, response.StatusCode);
        Assert.Equal(code, (string?)(await ErrorOf(response))["code"]);
        Assert.False(response.Headers.Contains("X-Realtime-Session-Id"));
    }

    [Fact]
    public async Task Offer_without_a_key_is_401_and_creates_no_session()
    {
        using var client = Client(key: null);
        var response = await client.PostAsJsonAsync("/realtime/offer", new { type = "offer", sdp = Offer() }, Ct);
        await AssertRejectedWithoutSession(response, HttpStatusCode.Unauthorized, "missing_api_key");
    }

    [Fact]
    public async Task Offer_with_a_key_the_api_refuses_is_401()
    {
        using var client = Client("sk-wrong");
        var response = await client.PostAsJsonAsync("/realtime/offer", new { type = "offer", sdp = Offer() }, Ct);
        await AssertRejectedWithoutSession(response, HttpStatusCode.Unauthorized, "invalid_api_key");
    }

    [Theory]
    [InlineData("not sdp at all")]
    [InlineData("v=0\r\nthis is=broken\r\n")]
    [InlineData("")]
    public async Task Bad_sdp_is_400(string sdp)
    {
        using var client = Client();
        var response = await client.PostAsJsonAsync("/realtime/offer", new { type = "offer", sdp }, Ct);
        await AssertRejectedWithoutSession(response, HttpStatusCode.BadRequest, "invalid_sdp");
    }

    /// <summary>Malformed offers in either envelope: each a precise 4xx in the OpenAI envelope, and no session.</summary>
    [Theory]
    [InlineData("empty SDP body", HttpStatusCode.BadRequest, "invalid_sdp")]
    [InlineData("empty JSON body", HttpStatusCode.BadRequest, "invalid_json")]
    [InlineData("JSON without sdp", HttpStatusCode.BadRequest, "invalid_sdp")]
    [InlineData("text that is not SDP", HttpStatusCode.BadRequest, "invalid_sdp")]
    [InlineData("SDP without a data-channel m-line", HttpStatusCode.BadRequest, "invalid_sdp")]
    [InlineData("SDP over the SDP limit", HttpStatusCode.RequestEntityTooLarge, "request_too_large")]
    [InlineData("SDP over the SDP limit, in JSON", HttpStatusCode.RequestEntityTooLarge, "request_too_large")]
    [InlineData("body over the body limit", HttpStatusCode.RequestEntityTooLarge, "request_too_large")]
    public async Task Malformed_offers_get_a_precise_4xx_and_no_session(string kind, HttpStatusCode status, string code)
    {
        // A valid offer padded with attribute lines past the SDP limit (64 Ki characters) but under the body limit (twice that).
        var padded = Offer() + string.Concat(Enumerable.Repeat("a=x-pad:" + new string('p', 90) + "\r\n", 800));
        HttpContent content = kind switch
        {
            "empty SDP body" => new StringContent("", Encoding.UTF8, "application/sdp"),
            "empty JSON body" => new StringContent("", Encoding.UTF8, "application/json"),
            "JSON without sdp" => new StringContent("""{"type":"offer"}""", Encoding.UTF8, "application/json"),
            "text that is not SDP" => new StringContent("Hello, I would like a session please.", Encoding.UTF8, "application/sdp"),
            "SDP without a data-channel m-line" => new StringContent(Offer(withDataSection: false), Encoding.UTF8, "application/sdp"),
            "SDP over the SDP limit" => new StringContent(padded, Encoding.UTF8, "application/sdp"),
            "SDP over the SDP limit, in JSON" => JsonContent.Create(new { type = "offer", sdp = padded }),
            _ => new StringContent(padded + padded, Encoding.UTF8, "application/sdp"),
        };
        using var client = Client();
        var response = await client.PostAsync("/realtime/offer", content, Ct);
        await AssertRejectedWithoutSession(response, status, code);
    }

    [Fact]
    public async Task Offer_without_a_data_channel_section_is_400()
    {
        using var client = Client();
        var response = await client.PostAsJsonAsync("/realtime/offer", new { type = "offer", sdp = Offer(withDataSection: false) }, Ct);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("data-channel", (string?)(await ErrorOf(response))["message"]);
    }

    [Fact]
    public async Task An_answer_instead_of_an_offer_is_400()
    {
        using var client = Client();
        var response = await client.PostAsJsonAsync("/realtime/offer", new { type = "answer", sdp = Offer() }, Ct);
        await AssertRejectedWithoutSession(response, HttpStatusCode.BadRequest, "invalid_type");
    }

    [Fact]
    public async Task Unsupported_media_type_is_415()
    {
        using var client = Client();
        var response = await client.PostAsync("/realtime/offer", new StringContent(Offer(), Encoding.UTF8, "text/plain"), Ct);
        await AssertRejectedWithoutSession(response, HttpStatusCode.UnsupportedMediaType, "unsupported_media_type");
    }

    [Fact]
    public async Task Json_offer_gets_a_json_answer_and_sdp_offer_gets_an_sdp_answer()
    {
        using var client = Client();
        var json = await client.PostAsJsonAsync("/realtime/offer", new { type = "offer", sdp = Offer() }, Ct);
        Assert.Equal(HttpStatusCode.OK, json.StatusCode);
        var answer = JsonNode.Parse(await json.Content.ReadAsStringAsync(Ct))!;
        Assert.Equal("answer", (string?)answer["type"]);
        var sdp = (string)answer["sdp"]!;
        Assert.Contains("a=ice-lite\r\n", sdp);
        Assert.Contains("a=setup:passive\r\n", sdp);
        Assert.Contains("m=application ", sdp);
        Assert.Contains("UDP/DTLS/SCTP webrtc-datachannel", sdp);
        Assert.Contains("a=sctp-port:5000\r\n", sdp);
        Assert.Contains("a=max-message-size:262144\r\n", sdp);
        Assert.Matches(@"a=candidate:1 1 udp \d+ 127\.0\.0\.1 \d+ typ host", sdp);
        Assert.Matches(@"a=fingerprint:sha-256 ([0-9A-F]{2}:){31}[0-9A-F]{2}", sdp);

        var raw = new StringContent(Offer(), Encoding.UTF8);
        raw.Headers.ContentType = new MediaTypeHeaderValue("application/sdp");
        var sdpResponse = await client.PostAsync("/realtime/offer", raw, Ct);
        Assert.Equal(HttpStatusCode.OK, sdpResponse.StatusCode);
        Assert.Equal("application/sdp", sdpResponse.Content.Headers.ContentType?.MediaType);
        Assert.StartsWith("v=0\r\n", await sdpResponse.Content.ReadAsStringAsync(Ct));

        // Nobody connects: the sessions exist until closed (here by hand; the connect timeout would do it).
        foreach (var id in new[] { json, sdpResponse }.Select(r => r.Headers.GetValues("X-Realtime-Session-Id").Single()))
        {
            var session = fixture.Sessions.Find(id);
            Assert.NotNull(session);
            session!.Close("test done");
            Assert.Null(fixture.Sessions.Find(id));
        }
    }

    [Fact]
    public async Task Ice_servers_hand_out_turn_rest_credentials()
    {
        using var anonymous = Client(key: null);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/realtime/ice-servers", Ct)).StatusCode);

        using var client = Client();
        var response = await client.GetAsync("/realtime/ice-servers", Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync(Ct))!;
        var server = body["iceServers"]![0]!;
        Assert.Equal(fixture.Turn.Url, (string?)server["urls"]![0]);
        var username = (string)server["username"]!;
        var parts = username.Split(':');
        var expiry = DateTimeOffset.FromUnixTimeSeconds(long.Parse(parts[0], System.Globalization.CultureInfo.InvariantCulture));
        Assert.InRange(expiry - DateTimeOffset.UtcNow, TimeSpan.FromMinutes(59), TimeSpan.FromMinutes(61));
        Assert.DoesNotContain(ApiStub.ValidKey, username);
        var expected = Convert.ToBase64String(HMACSHA1.HashData(Encoding.UTF8.GetBytes(Coturn.Secret), Encoding.UTF8.GetBytes(username)));
        Assert.Equal(expected, (string?)server["credential"]);
        Assert.Equal(3600, (long)body["ttl"]!);
    }
}
