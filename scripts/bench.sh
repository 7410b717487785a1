#!/usr/bin/env bash
# The benchmark (docs/benchmarks.md): builds release, starts cmdbus (every role, one process) on a
# fresh database with a known key, runs the scenarios asked for, stops cmdbus and deletes its
# broker namespace. Prints figures; never fails on speed.
#
#   scripts/bench.sh [e2e] [fanout] [limits] [keyed] [soak]      (default: the first three)
#
# Settings (environment): CMDBUS_BENCH_PORT (the first free port from 18080), CMDBUS_BENCH_PG (the server, default
# postgres://postgres@127.0.0.1:5432), CMDBUS_AMQP_URL, CMDBUS_BENCH_RATES (open-loop rates, "100 500 2000"),
# CMDBUS_BENCH_DURATION (each window, 10s), CMDBUS_BENCH_SERVER (another cmdbus binary to measure, for
# an A/B against an older build), CMDBUS_BENCH_SOCKETS (fan-out, 10000), CMDBUS_BENCH_SOAK_RATE and
# CMDBUS_BENCH_SOAK_MINUTES (soak: 1400/s, about half the top rate here, for 10 one-minute windows).
set -euo pipefail
cd "$(dirname "$0")/.."

scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(e2e fanout limits)
for scenario in "${scenarios[@]}"; do
  case "$scenario" in
    e2e | fanout | limits | keyed | soak) ;;
    *) echo "unknown scenario $scenario (e2e, fanout, limits, keyed, soak)" >&2; exit 2 ;;
  esac
done

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if [ -n "${CMDBUS_BENCH_PORT:-}" ]; then
  port=$CMDBUS_BENCH_PORT
  if listening "$port"; then echo "port $port is taken" >&2; exit 1; fi
else
  port=18080
  while listening "$port"; do port=$((port + 1)); done
fi
pg=${CMDBUS_BENCH_PG:-postgres://postgres@127.0.0.1:5432}
amqp=${CMDBUS_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
rates=${CMDBUS_BENCH_RATES:-100 500 2000}
duration=${CMDBUS_BENCH_DURATION:-10s}
sockets=${CMDBUS_BENCH_SOCKETS:-10000}
soak_rate=${CMDBUS_BENCH_SOAK_RATE:-1400}
soak_minutes=${CMDBUS_BENCH_SOAK_MINUTES:-10}
database=cmdbus_bench
namespace=bench
out=target/bench
mkdir -p "$out"
rm -f "$out/e2e.json" # limits compares with this run's figure, never an older one

cargo build --release -p cmdbus -p cmdbus-bench
bench=target/release/cmdbus-bench

# 10,000 WebSockets need as many descriptors on both ends.
ulimit -n "$(ulimit -Hn)"
# Errors in a few lines, without a backtrace each.
export RUST_LIB_BACKTRACE=0

PGOPTIONS='-c client_min_messages=warning' \
  psql "$pg/postgres" -qtAc "drop database if exists $database with (force)" >/dev/null
key="cmdbus_$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"

echo "cmdbus benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD)"
echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), \
$(free -g | awk '/^Mem:/ {print $2}') GiB; PostgreSQL $(psql "$pg/postgres" -qtAc 'show server_version' | cut -d' ' -f1); \
load average $(cut -d' ' -f1-3 /proc/loadavg)"

# Every role in one process; no rate limit; the socket caps raised for the fan-out scenario.
CMDBUS_LISTEN="127.0.0.1:$port" \
CMDBUS_DATABASE_URL="$pg/$database" \
CMDBUS_AMQP_URL="$amqp" \
CMDBUS_NAMESPACE="$namespace" \
CMDBUS_LOG=warn \
CMDBUS_BOOTSTRAP_KEY="$key" \
CMDBUS_RATE_LIMIT=0 \
CMDBUS_MAX_SOCKETS_PER_TENANT=$((sockets + 100)) \
CMDBUS_MAX_CONNECTIONS=$((sockets + 1000)) \
CMDBUS_MAX_CONNECTIONS_PER_ADDRESS=0 \
  "${CMDBUS_BENCH_SERVER:-target/release/cmdbus}" all >"$out/cmdbus.log" 2>&1 &
server=$!
ready=

stop() {
  if kill -0 "$server" 2>/dev/null; then
    kill -TERM "$server"
    wait "$server" || true
  fi
  if [ -n "$ready" ]; then
    CMDBUS_DATABASE_URL="$pg/$database" "$bench" cleanup --amqp-url "$amqp" --namespace "$namespace" ||
      echo "(the namespace $namespace is left on the broker)"
  fi
}
trap stop EXIT

for _ in $(seq 120); do
  # Our server, not another one that took the port meanwhile: it must still be running.
  kill -0 "$server" 2>/dev/null || { cat "$out/cmdbus.log"; exit 1; }
  curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && kill -0 "$server" 2>/dev/null && ready=1 && break
  sleep 0.5
done
[ -n "$ready" ] || { echo "cmdbus is not ready; see $out/cmdbus.log" >&2; exit 1; }
echo "cmdbus (pid $server) on 127.0.0.1:$port"
echo

export CMDBUS_BENCH_URL="http://127.0.0.1:$port" CMDBUS_KEY="$key"
run=(--server-pid "$server" --postgres-database "$database" --duration "$duration")

for scenario in "${scenarios[@]}"; do
  case "$scenario" in
    e2e)
      "$bench" e2e "${run[@]}" --concurrency 1
      "$bench" e2e "${run[@]}" --concurrency 32
      "$bench" e2e "${run[@]}" --concurrency 128 --record "$out/e2e.json"
      for offered in $rates; do "$bench" e2e "${run[@]}" --rate "$offered"; done
      "$bench" e2e "${run[@]}" --concurrency 32 --type demo.sleep --sleep-ms 20
      ;;
    fanout)
      "$bench" fanout "${run[@]}" --concurrency 32 --sockets "$sockets"
      ;;
    keyed)
      # Issue 16's workload: 8 keys x 1,000 with 1 in 20 failing once, and 8 x 500 with none.
      "$bench" keyed --keys 8 --per-key 1000 --fail-every 20
      "$bench" keyed --keys 8 --per-key 500 --fail-every 0
      ;;
    soak)
      "$bench" soak --server-pid "$server" --postgres-database "$database" \
        --rate "$soak_rate" --duration 1m --windows "$soak_minutes"
      ;;
    limits)
      against=()
      [ -f "$out/e2e.json" ] && against=(--against "$out/e2e.json")
      "$bench" limits --amqp-url "$amqp" --database-url "$pg/cmdbus_bench_limits" "${against[@]}"
      ;;
  esac
done
