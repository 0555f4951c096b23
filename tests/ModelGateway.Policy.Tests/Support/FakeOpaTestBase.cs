using Microsoft.Extensions.Time.Testing;

namespace ModelGateway.Policy.Tests.Support;

/// <summary>A fake OPA and the Policy service pointed at it, fresh for every test.</summary>
public abstract class FakeOpaTestBase : IAsyncLifetime
{
    protected FakeOpaServer Opa { get; private set; } = null!;

    protected PolicyServiceFactory Service { get; private set; } = null!;

    /// <summary>The service's clock; null for the real one.</summary>
    protected virtual FakeTimeProvider? Time => null;

    public virtual async ValueTask InitializeAsync()
    {
        Opa = await FakeOpaServer.StartAsync();
        Service = new PolicyServiceFactory(Opa.Url, Time);
    }

    public virtual async ValueTask DisposeAsync()
    {
        await Service.DisposeAsync();
        await Opa.DisposeAsync();
        GC.SuppressFinalize(this);
    }
}
