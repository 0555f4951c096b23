using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace ModelGateway.Realtime.Turn;

/// <summary>One ephemeral TURN credential.</summary>
internal sealed record TurnCredential(string Username, string Credential, DateTimeOffset Expires);

/// <summary>
/// Time-limited TURN credentials of the "TURN REST API" draft (draft-uberti-behave-turn-rest-00 §2.2),
/// which coturn checks with <c>--use-auth-secret</c>: username = "&lt;unix expiry&gt;:&lt;user&gt;",
/// password = base64(HMAC-SHA1(secret, username)).
/// </summary>
internal static class TurnCredentials
{
    public static TurnCredential Create(string secret, string user, DateTimeOffset now, TimeSpan lifetime)
    {
        var expires = now + lifetime;
        var username = expires.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture) + ":" + user;
        var mac = HMACSHA1.HashData(Encoding.UTF8.GetBytes(secret), Encoding.UTF8.GetBytes(username));
        return new TurnCredential(username, Convert.ToBase64String(mac), expires);
    }
}
