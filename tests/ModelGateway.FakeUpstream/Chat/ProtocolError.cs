namespace ModelGateway.FakeUpstream.Chat;

/// <summary>The error categories every protocol can express; each maps them to its own status and body.</summary>
internal enum ErrorKind
{
    InvalidRequest,
    Authentication,
    RateLimit,
    Server,
    Overloaded,
}

/// <summary>
/// An error to answer with. <see cref="Param"/> and <see cref="Code"/> only appear in OpenAI's envelope
/// (openai_error_schema.json); the other protocols ignore them.
/// </summary>
internal sealed record ProtocolError(ErrorKind Kind, string Message, string? Param = null, string? Code = null);
