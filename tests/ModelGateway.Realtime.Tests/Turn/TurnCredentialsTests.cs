using ModelGateway.Realtime.Signalling;
using ModelGateway.Realtime.Turn;

namespace ModelGateway.Realtime.Tests.Turn;

public sealed class TurnCredentialsTests
{
    [Fact]
    public void Username_is_expiry_and_user_and_password_is_base64_hmac_sha1()
    {
        // Expected value computed independently (Python hmac/sha1/base64).
        var credential = TurnCredentials.Create("north-shared-secret", "kalice", DateTimeOffset.FromUnixTimeSeconds(1_700_000_000), TimeSpan.FromHours(1));
        Assert.Equal("1700003600:kalice", credential.Username);
        Assert.Equal("pmmAzlhGzoj+JFnzI9EBHOfcryk=", credential.Credential);
    }

    [Fact]
    public void Tenant_label_hides_the_key() =>
        Assert.Matches("^k[0-9a-f]{16}$", ApiKeyValidator.TenantLabel("sk-secret-key"));

    [Fact]
    public void Options_need_a_secret_when_urls_are_set()
    {
        var validator = new TurnOptionsValidator();
        Assert.True(validator.Validate(null, new TurnOptions()).Succeeded);
        Assert.True(validator.Validate(null, new TurnOptions { Urls = ["turn:x:3478"] }).Failed);
        Assert.True(validator.Validate(null, new TurnOptions { Urls = ["stun:x"], Secret = new string('s', 16) }).Failed);
        Assert.True(validator.Validate(null, new TurnOptions { Urls = ["turn:x:3478"], Secret = new string('s', 16) }).Succeeded);
    }
}
