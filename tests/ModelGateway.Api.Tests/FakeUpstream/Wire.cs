using System.Text;
using System.Text.Json;

namespace ModelGateway.Api.Tests.FakeUpstream;

/// <summary>One server-sent event: its <c>event:</c> name (null if none) and its <c>data:</c> payload.</summary>
public sealed record SseEvent(string? Event, string Data)
{
    public JsonElement Json => JsonDocument.Parse(Data).RootElement.Clone();
}

public static class Sse
{
    /// <summary>Parses an SSE body: events separated by a blank line, each with optional event: and data: lines.</summary>
    public static List<SseEvent> Parse(string body)
    {
        var events = new List<SseEvent>();
        foreach (var block in body.Replace("\r\n", "\n").Split("\n\n", StringSplitOptions.RemoveEmptyEntries))
        {
            string? name = null;
            var data = new StringBuilder();
            foreach (var line in block.Split('\n'))
            {
                if (line.StartsWith("event: ", StringComparison.Ordinal))
                {
                    name = line["event: ".Length..];
                }
                else if (line.StartsWith("data: ", StringComparison.Ordinal))
                {
                    data.Append(line["data: ".Length..]);
                }
            }
            events.Add(new SseEvent(name, data.ToString()));
        }
        return events;
    }
}

/// <summary>The recorded provider payloads of /work/shared/wire, copied next to the tests as wire/.</summary>
public static class WireFixture
{
    public static string Text(string name) => File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "wire", name));

    public static JsonElement Json(string name) => JsonDocument.Parse(Text(name)).RootElement.Clone();

    public static List<SseEvent> Stream(string name) => Sse.Parse(Text(name));

    /// <summary>The contract's input tokens: per message ceil(UTF-8 bytes / 4) + 3.</summary>
    public static int InputTokens(params string[] messageTexts) =>
        messageTexts.Sum(t => (Encoding.UTF8.GetByteCount(t) + 3) / 4 + 3);
}

/// <summary>Compares the shape of a fake payload with a recorded one: keys, nesting and value kinds.</summary>
public static class JsonShape
{
    public static string[] Keys(JsonElement element) => element.EnumerateObject().Select(p => p.Name).ToArray();

    /// <summary>
    /// With <paramref name="exactKeys"/> every object has the same keys in the same order; otherwise the
    /// fake may add keys but must have all of the fixture's. A null in the fixture accepts a null or a
    /// string (nullable fields such as stop_sequence); arrays compare their first elements.
    /// </summary>
    public static void AssertMatches(JsonElement expected, JsonElement actual, bool exactKeys, string path = "$")
    {
        if (expected.ValueKind == JsonValueKind.Null)
        {
            Assert.True(actual.ValueKind is JsonValueKind.Null or JsonValueKind.String, $"{path}: expected null or string, got {actual.ValueKind}");
            return;
        }
        Assert.True(Kind(expected) == Kind(actual), $"{path}: expected {expected.ValueKind}, got {actual.ValueKind}");
        switch (expected.ValueKind)
        {
            case JsonValueKind.Object:
                var expectedKeys = Keys(expected);
                var actualKeys = Keys(actual);
                if (exactKeys)
                {
                    Assert.True(expectedKeys.SequenceEqual(actualKeys),
                        $"{path}: keys [{string.Join(",", actualKeys)}], fixture has [{string.Join(",", expectedKeys)}]");
                }
                else
                {
                    var missing = expectedKeys.Except(actualKeys).ToArray();
                    Assert.True(missing.Length == 0, $"{path}: missing keys [{string.Join(",", missing)}]");
                }
                foreach (var property in expected.EnumerateObject())
                {
                    AssertMatches(property.Value, actual.GetProperty(property.Name), exactKeys, path + "." + property.Name);
                }
                break;
            case JsonValueKind.Array:
                if (expected.GetArrayLength() > 0 && actual.GetArrayLength() > 0)
                {
                    AssertMatches(expected[0], actual[0], exactKeys, path + "[0]");
                }
                break;
        }
    }

    private static JsonValueKind Kind(JsonElement e) => e.ValueKind == JsonValueKind.False ? JsonValueKind.True : e.ValueKind;
}
