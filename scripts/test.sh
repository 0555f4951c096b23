#!/usr/bin/env bash
# Runs the whole test suite from a clean clone: installs the servers the tests start (Redis, Postgres, coturn,
# Chromium), builds, runs every test project, and ends with one line of real totals: "N passed, N failed, N skipped".
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh redis-server postgresql coturn chromium iproute2 util-linux || exit 1
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

results=$(mktemp -d)
status=0
dotnet build ModelGateway.sln -nologo -v quiet -clp:ErrorsOnly || { echo "0 passed, 1 failed"; exit 1; }

for project in tests/*.Tests; do
  name=$(basename "$project")
  echo "== $name"
  if [ "$name" = "ModelGateway.Realtime.Tests" ]; then
    # WebRTC tests run in a network namespace of their own: only loopback exists, no packet leaves the machine.
    unshare -n sh -c "ip link set lo up && dotnet test --project '$project' --no-build -- --report-trx --results-directory '$results/$name'" 2>&1 | tee "$results/$name.log" || status=1
  else
    dotnet test --project "$project" --no-build -- --report-trx --results-directory "$results/$name" 2>&1 | tee "$results/$name.log" || status=1
  fi
done

# A failing test host prints its whole standard output after the failures, which pushes them out of a log's tail:
# repeat each failed test's name, message and first stack lines here, just above the totals.
for log in "$results"/*.log; do
  [ -f "$log" ] || continue
  awk '/^failed /{n=14; print "FAILED " substr($0, 8); next} n>0 && /^  /{print; n--; next} {n=0}' "$log"
done

passed=0; failed=0; total=0
for trx in "$results"/*/*.trx; do
  [ -f "$trx" ] || continue
  counters=$(grep -o '<Counters [^>]*>' "$trx" | head -1)
  get() { printf '%s' "$counters" | sed -n "s/.* $1=\"\([0-9]*\)\".*/\1/p"; }
  total=$((total + $(get total))); passed=$((passed + $(get passed))); failed=$((failed + $(get failed)))
done
skipped=$((total - passed - failed))
if [ "$total" -eq 0 ]; then status=1; fi
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo "$passed passed, $failed failed, $skipped skipped"
exit $status
