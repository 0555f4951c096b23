using System.Text.Json;

namespace ModelGateway.FakeUpstream.Chat;

/// <summary>
/// One provider wire format. <see cref="ChatPipeline"/> runs the steps shared by all of them
/// (recording, faults, reply rules); an implementation only reads its request and writes its answers.
/// </summary>
internal interface IChatProtocol
{
    UpstreamProtocol Kind { get; }

    /// <summary>Header checks the real API makes before it looks at the body; null when they pass.</summary>
    ProtocolError? ValidateHeaders(HttpRequest request);

    /// <summary>Reads and validates the body; returns the error to answer with, or null and the prompt.</summary>
    ProtocolError? TryReadPrompt(JsonElement root, out ChatPrompt prompt);

    Task WriteErrorAsync(HttpContext context, ProtocolError error);

    Task WriteCompletionAsync(ChatExchange exchange);

    Task WriteStreamAsync(ChatExchange exchange);
}
