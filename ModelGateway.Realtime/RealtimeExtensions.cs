using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using ModelGateway.Realtime.Chat;
using ModelGateway.Realtime.Dtls;
using ModelGateway.Realtime.Sctp;
using ModelGateway.Realtime.Sessions;
using ModelGateway.Realtime.Signalling;
using ModelGateway.Realtime.Turn;

namespace ModelGateway.Realtime;

internal static class RealtimeExtensions
{
    /// <summary>RFC 4960 §15 Valid.Cookie.Life.</summary>
    private static readonly TimeSpan CookieLifetime = TimeSpan.FromSeconds(60);

    public static IHostApplicationBuilder AddRealtime(this IHostApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<RealtimeOptions>().BindConfiguration(RealtimeOptions.SectionName).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<RealtimeOptions>, RealtimeOptionsValidator>());
        services.AddOptions<TurnOptions>().BindConfiguration(TurnOptions.SectionName).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<TurnOptions>, TurnOptionsValidator>());

        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<RealtimeTelemetry>();
        services.TryAddSingleton(sp => DtlsCertificate.Create(sp.GetRequiredService<TimeProvider>()));
        services.TryAddSingleton(sp => new StateCookieSigner(sp.GetRequiredService<TimeProvider>(), CookieLifetime));
        services.TryAddSingleton<ApiKeyValidator>();
        services.TryAddSingleton<SessionManager>();
        services.AddHostedService<SessionReaper>();

        services.AddHttpClient<IApiClient, HttpApiClient>((sp, http) =>
            {
                var baseUrl = sp.GetRequiredService<IOptions<RealtimeOptions>>().Value.ApiBaseUrl;
                http.BaseAddress = new Uri(baseUrl.EndsWith('/') ? baseUrl : baseUrl + "/");
                // Chat streams last as long as the model writes; each call carries its own cancellation.
                http.Timeout = Timeout.InfiniteTimeSpan;
            })
            .ConfigurePrimaryHttpMessageHandler(() => new SocketsHttpHandler
            {
                AllowAutoRedirect = false,
                UseCookies = false,
                UseProxy = false,
                AutomaticDecompression = System.Net.DecompressionMethods.None,
                PooledConnectionLifetime = TimeSpan.FromMinutes(2),
            });
        return builder;
    }
}
