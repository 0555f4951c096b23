#!/usr/bin/env bash
# Runs ModelGateway: the Aspire AppHost with its dashboard (http://localhost:15000) and every service;
# the Api answers on http://localhost:8080. With no provider keys set, the default aliases use the fake upstream.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh redis-server postgresql coturn
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
exec dotnet run --project ModelGateway.AppHost --launch-profile http -- "$@"
