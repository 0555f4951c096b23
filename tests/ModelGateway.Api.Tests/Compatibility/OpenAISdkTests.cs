using System.ClientModel;
using System.ClientModel.Primitives;
using System.Text;
using ModelGateway.Api.Tests.Support;
using OpenAI;
using OpenAI.Chat;

namespace ModelGateway.Api.Tests.Compatibility;

/// <summary>The Development contract's aliases plus one whose provider rate-limits with a long retry-after.</summary>
public sealed class OpenAISdkFixture : GatewayFixture
{
    protected override IEnumerable<KeyValuePair<string, string?>> ExtraSettings => new Dictionary<string, string?>
    {
        ["Gateway:Routes:rate-limited:Targets:0:Provider"] = "openrouter",
        ["Gateway:Routes:rate-limited:Targets:0:Model"] = "fault-429@30",
        ["Gateway:Routes:schema-wrong-types:Targets:0:Provider"] = "anthropic",
        ["Gateway:Routes:schema-wrong-types:Targets:0:Model"] = "schema-wrong-types",
    };
}

/// <summary>
/// The official OpenAI .NET SDK (NuGet <c>OpenAI</c>, the version Directory.Packages.props pins) pointed at the gateway:
/// what an application does when it swaps its base URL. Each default alias, hence each wire protocol the gateway
/// translates, must complete, stream and round-trip a tool call with usage, and the gateway's errors must surface as the
/// SDK's typed <see cref="ClientResultException"/> with the right status (issue 3, "Compatibility").
/// </summary>
public sealed class OpenAISdkTests(OpenAISdkFixture fx) : IClassFixture<OpenAISdkFixture>, IDisposable
{
    public static readonly TheoryData<string> Aliases = ["chat-default", "chat-anthropic", "chat-local"];

    private static readonly ChatTool WeatherTool = ChatTool.CreateFunctionTool("get_weather", "The weather in a city.",
        BinaryData.FromString("""{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"""));

    // Streams must not pass through the standard resilience handler (it cuts them at 10 s): a plain handler.
    private readonly HttpClient _http = new(new SocketsHttpHandler());

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public void Dispose() => _http.Dispose();

    private ChatClient Client(string model, string key = GatewayFixture.DevKey) => new(model, new ApiKeyCredential(key), new OpenAIClientOptions
    {
        Endpoint = new Uri(fx.Gateway.Client.BaseAddress!, "/v1"),
        Transport = new HttpClientPipelineTransport(_http),
        // The SDK retries 429 and 5xx by default; the error tests must see the first answer.
        RetryPolicy = new ClientRetryPolicy(maxRetries: 0),
    });

    [Theory]
    [MemberData(nameof(Aliases))]
    public async Task Completes_a_chat_with_usage(string alias)
    {
        ChatCompletion completion = await Client(alias).CompleteChatAsync([new UserChatMessage("hello there")], cancellationToken: Ct);

        Assert.Equal(ChatMessageRole.Assistant, completion.Role);
        Assert.Equal("Echo: hello there", completion.Content.Single().Text);
        Assert.Equal(ChatFinishReason.Stop, completion.FinishReason);
        // The fake's counts: ceil(11 bytes / 4) + 3 per message in, three words out.
        Assert.Equal(6, completion.Usage.InputTokenCount);
        Assert.Equal(3, completion.Usage.OutputTokenCount);
        Assert.Equal(9, completion.Usage.TotalTokenCount);
    }

    [Theory]
    [MemberData(nameof(Aliases))]
    public async Task Streams_a_chat_with_usage(string alias)
    {
        var text = new StringBuilder();
        ChatFinishReason? finish = null;
        ChatTokenUsage? usage = null;
        var updates = 0;
        await foreach (var update in Client(alias).CompleteChatStreamingAsync([new UserChatMessage("hello there")], cancellationToken: Ct))
        {
            updates++;
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }
            finish ??= update.FinishReason;
            usage ??= update.Usage;
        }

        Assert.Equal("Echo: hello there", text.ToString());
        Assert.Equal(ChatFinishReason.Stop, finish);
        Assert.True(updates >= 3, $"{updates} updates: the answer arrived in pieces");
        // The SDK asks for stream_options.include_usage; the gateway returns the usage chunk because it asked.
        Assert.NotNull(usage);
        Assert.Equal(6, usage.InputTokenCount);
        Assert.Equal(3, usage.OutputTokenCount);
    }

    [Theory]
    [MemberData(nameof(Aliases))]
    public async Task Round_trips_a_tool_call(string alias)
    {
        var client = Client(alias);
        var options = new ChatCompletionOptions { Tools = { WeatherTool } };
        List<ChatMessage> messages = [new UserChatMessage("What is the weather in Paris?")];

        ChatCompletion first = await client.CompleteChatAsync(messages, options, Ct);

        Assert.Equal(ChatFinishReason.ToolCalls, first.FinishReason);
        var call = Assert.Single(first.ToolCalls);
        Assert.Equal("get_weather", call.FunctionName);
        Assert.False(string.IsNullOrEmpty(call.Id));
        // The fake fills each required string property with "test".
        Assert.Equal("test", call.FunctionArguments.ToObjectFromJson<Dictionary<string, string>>()!["city"]);
        Assert.True(first.Usage.OutputTokenCount > 0);

        messages.Add(new AssistantChatMessage(first));
        messages.Add(new ToolChatMessage(call.Id, "sunny, 21 °C"));
        ChatCompletion second = await client.CompleteChatAsync(messages, options, Ct);

        Assert.Equal(ChatFinishReason.Stop, second.FinishReason);
        Assert.Equal("Tool said: sunny, 21 °C", second.Content.Single().Text);
        Assert.True(second.Usage.InputTokenCount > first.Usage.InputTokenCount);
    }

    [Theory]
    [MemberData(nameof(Aliases))]
    public async Task Streams_a_tool_call_the_sdk_can_assemble(string alias)
    {
        var options = new ChatCompletionOptions { Tools = { WeatherTool } };
        string? id = null, name = null;
        var arguments = new StringBuilder();
        ChatFinishReason? finish = null;
        await foreach (var update in Client(alias).CompleteChatStreamingAsync([new UserChatMessage("weather in Paris?")], options, Ct))
        {
            foreach (var call in update.ToolCallUpdates)
            {
                Assert.Equal(0, call.Index);
                id ??= call.ToolCallId;
                name ??= call.FunctionName;
                arguments.Append(call.FunctionArgumentsUpdate?.ToString());
            }
            finish ??= update.FinishReason;
        }

        Assert.Equal(ChatFinishReason.ToolCalls, finish);
        Assert.False(string.IsNullOrEmpty(id));
        Assert.Equal("get_weather", name);
        Assert.Equal("test", BinaryData.FromString(arguments.ToString()).ToObjectFromJson<Dictionary<string, string>>()!["city"]);
    }

    [Fact]
    public async Task A_wrong_key_is_an_authentication_error()
    {
        var ex = await Assert.ThrowsAsync<ClientResultException>(() =>
            Client("chat-default", "sk-wrong-0123456789").CompleteChatAsync([new UserChatMessage("hi")], cancellationToken: Ct));

        Assert.Equal(401, ex.Status);
        Assert.Contains("API key", ex.Message);
    }

    [Fact]
    public async Task A_provider_rate_limit_is_a_429_with_retry_after()
    {
        var ex = await Assert.ThrowsAsync<ClientResultException>(() =>
            Client("rate-limited").CompleteChatAsync([new UserChatMessage("hi")], cancellationToken: Ct));

        Assert.Equal(429, ex.Status);
        var raw = ex.GetRawResponse()!;
        Assert.True(raw.Headers.TryGetValue("retry-after", out var retryAfter), "retry-after header");
        Assert.Equal("30", retryAfter);
    }

    [Fact]
    public async Task An_invalid_body_is_a_bad_request()
    {
        // The SDK validates its typed requests, so an invalid body goes through its protocol method, as raw JSON would.
        var body = BinaryContent.Create(BinaryData.FromString("""{"model":"chat-default","messages":[]}"""));
        var ex = await Assert.ThrowsAsync<ClientResultException>(() => Client("chat-default").CompleteChatAsync(body, new RequestOptions { CancellationToken = Ct }));

        Assert.Equal(400, ex.Status);
        Assert.Contains("messages", ex.Message);
    }

    private const string PersonSchema = """
        {"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer","minimum":0},
         "email":{"type":"string","format":"email"},"role":{"enum":["admin","user"]},
         "address":{"$ref":"#/$defs/address"}},
         "required":["name","age","email","role","address"],"additionalProperties":false,
         "$defs":{"address":{"type":"object","properties":{"city":{"type":"string"},"zip":{"type":"string","minLength":5}},
                  "required":["city","zip"],"additionalProperties":false}}}
        """;

    private static ChatCompletionOptions StructuredOptions() => new()
    {
        ResponseFormat = ChatResponseFormat.CreateJsonSchemaFormat("person", BinaryData.FromString(PersonSchema), jsonSchemaIsStrict: true),
    };

    private static void AssertPerson(string json)
    {
        var check = Tests.StructuredOutput.StructuredOutputKit.Check(PersonSchema, json);
        Assert.True(check.IsValid, $"{json}: {string.Join("; ", check.Violations)}");
        Assert.False(check.Extracted);
    }

    [Theory]
    [MemberData(nameof(Aliases))]
    public async Task Structured_output_returns_schema_valid_json(string alias)
    {
        ChatCompletion completion = await Client(alias).CompleteChatAsync([new UserChatMessage("Describe a person.")], StructuredOptions(), Ct);

        Assert.Equal(ChatFinishReason.Stop, completion.FinishReason);
        AssertPerson(completion.Content.Single().Text);
    }

    [Theory]
    [MemberData(nameof(Aliases))]
    public async Task Structured_output_streams_schema_valid_json(string alias)
    {
        var text = new StringBuilder();
        await foreach (var update in Client(alias).CompleteChatStreamingAsync([new UserChatMessage("Describe a person.")], StructuredOptions(), Ct))
        {
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }
        }
        AssertPerson(text.ToString());
    }

    [Fact]
    public async Task Structured_output_that_fails_its_schema_is_an_error_naming_pointer_and_keyword()
    {
        var ex = await Assert.ThrowsAsync<ClientResultException>(() =>
            Client("schema-wrong-types").CompleteChatAsync([new UserChatMessage("Describe a person.")], StructuredOptions(), Ct));

        Assert.Equal(502, ex.Status);
        Assert.Contains("/age: type:", ex.Message);
        Assert.Contains("structured_output_invalid", ex.Message);
    }

    [Fact]
    public async Task An_unknown_model_is_a_404()
    {
        var ex = await Assert.ThrowsAsync<ClientResultException>(() =>
            Client("no-such-model").CompleteChatAsync([new UserChatMessage("hi")], cancellationToken: Ct));

        Assert.Equal(404, ex.Status);
    }
}
