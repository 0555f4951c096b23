using ModelGateway.Realtime.Sessions;

namespace ModelGateway.Realtime.Tests.Sessions;

public sealed class RealtimeOptionsTests
{
    [Fact]
    public void Defaults_need_candidate_addresses()
    {
        var validator = new RealtimeOptionsValidator();
        Assert.True(validator.Validate(null, new RealtimeOptions()).Failed);
        Assert.True(validator.Validate(null, new RealtimeOptions { CandidateAddresses = ["127.0.0.1"] }).Succeeded);
    }

    [Theory]
    [InlineData("0.0.0.0")]
    [InlineData("not-an-ip")]
    public void Unusable_candidate_addresses_fail(string address) =>
        Assert.True(new RealtimeOptionsValidator().Validate(null, new RealtimeOptions { CandidateAddresses = [address] }).Failed);

    [Fact]
    public void Bad_limits_fail()
    {
        var validator = new RealtimeOptionsValidator();
        var good = new RealtimeOptions { CandidateAddresses = ["127.0.0.1"] };
        Assert.True(validator.Validate(null, new RealtimeOptions { CandidateAddresses = good.CandidateAddresses, MaxSessions = 0 }).Failed);
        Assert.True(validator.Validate(null, new RealtimeOptions { CandidateAddresses = good.CandidateAddresses, IdleTimeout = TimeSpan.Zero }).Failed);
        Assert.True(validator.Validate(null, new RealtimeOptions { CandidateAddresses = good.CandidateAddresses, UdpPortMin = 5000, UdpPortMax = 4000 }).Failed);
        Assert.True(validator.Validate(null, new RealtimeOptions { CandidateAddresses = good.CandidateAddresses, MaxMessageBytes = 10 }).Failed);
    }
}
