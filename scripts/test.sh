#!/usr/bin/env bash
# Runs the whole test suite against the real local services. On a fresh machine it first
# installs and starts what the tests need: PostgreSQL, RabbitMQ, Debian's Chromium with its
# driver for the browser tests, PgBouncer for the PgBouncer test (which starts its own),
# Schemathesis in .venv for the conformance tests, and systemd-analyze and docker-compose for
# the deployment files. Safe to run again: it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v pg_ctlcluster >/dev/null || missing+=(postgresql)
command -v rabbitmq-server >/dev/null || missing+=(rabbitmq-server)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
# The PgBouncer test starts a private pgbouncer of its own (Debian's package, from /usr/sbin).
[ -x /usr/sbin/pgbouncer ] || command -v pgbouncer >/dev/null || missing+=(pgbouncer)
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  echo "starting PostgreSQL"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
fi
for _ in $(seq 60); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 0.5; done
pg_isready -h 127.0.0.1 -p 5432

broker_up() { as_root timeout 150 rabbitmqctl -q await_startup --timeout 120 >/dev/null 2>&1; }
if ! as_root timeout 30 rabbitmqctl -q status >/dev/null 2>&1; then
  echo "starting RabbitMQ"
  as_root rabbitmq-server -detached || true
fi
broker_up || true
# A fault test that was interrupted may have left the broker app stopped.
as_root timeout 120 rabbitmqctl -q start_app >/dev/null 2>&1 || true
if ! broker_up; then
  # A node whose application will not start again (seen after queue crashes): restart it.
  echo "restarting RabbitMQ"
  as_root timeout 60 rabbitmqctl -q stop >/dev/null 2>&1 || as_root pkill -9 -u rabbitmq beam.smp || true
  sleep 2
  as_root rabbitmq-server -detached
  broker_up
fi
if [ "${CI:-}" = true ]; then
  # CI owns this broker: start from a clean node, so that queues left by earlier runs (a test
  # killed half-way leaves its namespace behind) cannot slow the broker's restarts down.
  echo "resetting RabbitMQ to a clean node"
  as_root timeout 120 rabbitmqctl -q stop_app
  as_root timeout 120 rabbitmqctl -q reset
  as_root timeout 120 rabbitmqctl -q start_app
  broker_up
fi

# Schemathesis and an OpenAPI validator for the conformance tests, in .venv, at the pinned
# versions (reinstalled only when the pins change).
requirements=scripts/conformance-requirements.txt
if ! cmp -s "$requirements" .venv/installed-requirements.txt 2>/dev/null; then
  echo "installing the conformance tools into .venv"
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check -r "$requirements"
  cp "$requirements" .venv/installed-requirements.txt
fi

# No module of any crate imports its way back to itself: the layout shows the flow.
python3 scripts/circles.py

# The systemd unit and the compose files, checked without systemd running or a Docker engine
# (Debian's systemd for systemd-analyze, Debian's docker-compose without the engine it
# recommends).
deploy_tools=()
command -v systemd-analyze >/dev/null || deploy_tools+=(systemd)
command -v docker-compose >/dev/null || deploy_tools+=(docker-compose)
if [ ${#deploy_tools[@]} -gt 0 ]; then
  echo "installing: ${deploy_tools[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${deploy_tools[@]}" >/dev/null
fi
scripts/check-deploy.sh

# The browser library and its React hooks: type-checked, and no generated file (wire types from
# /openapi.json, the bundle the server serves, the declarations) stale. Installs its pinned dev
# tools from the npm registry on first use.
command -v npm >/dev/null || { as_root apt-get update -qq; as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }
clients/js/check.sh

# cargo prints one "test result" line per test binary; the sum is the suite's closing line.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
sum() { grep -E '^test result:' "$log" | grep -Eo "[0-9]+ $1" | awk '{n += $1} END {print n + 0}'; }
echo
echo "tests: $(sum passed) passed, $(sum failed) failed"
exit "$status"
