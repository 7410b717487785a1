#!/usr/bin/env bash
# A private three-node RabbitMQ cluster on this machine, for the cluster test and for trying
# cmdbus against a cluster by hand. It never touches the machine's own node (rabbit@localhost on
# 5672, data in /var/lib/rabbitmq): its nodes have their own names, ports, data and log
# directories, configuration, plugins file and Erlang cookie, and every rabbitmqctl call here
# names its node with -n and runs with this cluster's cookie.
#
#   scripts/rabbit-cluster.sh start           start the nodes that are down, form the cluster
#   scripts/rabbit-cluster.sh stop            stop every node (its data stays)
#   scripts/rabbit-cluster.sh clean           stop every node and delete the cluster's directory
#   scripts/rabbit-cluster.sh status          each node: up or down, pid, AMQP port
#   scripts/rabbit-cluster.sh kill NODE       SIGKILL one node (1, 2, 3 or its name)
#   scripts/rabbit-cluster.sh restart NODE    stop (or reap a killed) node and start it again
#   scripts/rabbit-cluster.sh freeze NODE     SIGSTOP one node: alive to TCP, silent (a hung host)
#   scripts/rabbit-cluster.sh thaw NODE       SIGCONT a frozen node
#   scripts/rabbit-cluster.sh leader QUEUE    the node (1, 2 or 3) leading a quorum queue
#   scripts/rabbit-cluster.sh urls            the comma-separated AMQP URLs, for CMDBUS_AMQP_URL
#   scripts/rabbit-cluster.sh ctl NODE ARGS   rabbitmqctl ARGS against one node
#
# Nodes: cmdbus-c1@localhost, cmdbus-c2@localhost, cmdbus-c3@localhost; AMQP on 127.0.0.1:5681,
# 5682, 5683 (guest/guest); Erlang distribution on 25681-25683. Everything lives under
# $CMDBUS_CLUSTER_DIR (default target/rabbit-cluster in the checkout).
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
base="${CMDBUS_CLUSTER_DIR:-$repo/target/rabbit-cluster}"
bin=/usr/lib/rabbitmq/bin # the real scripts: /usr/sbin's wrappers switch to the rabbitmq user
nodes=(1 2 3)

name() { echo "cmdbus-c$1@localhost"; }
amqp_port() { echo $((5680 + $1)); }
dist_port() { echo $((25680 + $1)); }
dir() { echo "$base/c$1"; }

# NODE as 1, 2, 3, c2 or cmdbus-c2@localhost → 2.
node_number() {
  local wanted="${1:-}" n
  for n in "${nodes[@]}"; do
    if [ "$wanted" = "$n" ] || [ "$wanted" = "c$n" ] || [ "$wanted" = "$(name "$n")" ]; then
      echo "$n"
      return
    fi
  done
  echo "unknown node '$wanted': use 1, 2 or 3" >&2
  exit 2
}

# The environment every RabbitMQ script of node N runs with: its own env file (in place of
# /etc/rabbitmq/rabbitmq-env.conf, which names the machine's node) and HOME (the cookie).
node_env() {
  local n=$1
  echo RABBITMQ_CONF_ENV_FILE="$(dir "$n")/rabbitmq-env.conf" HOME="$base"
}

ctl() {
  local n=$1
  shift
  (cd "$base" && env $(node_env "$n") timeout 120 "$bin/rabbitmqctl" -n "$(name "$n")" "$@")
}

prepare() {
  local n
  mkdir -p "$base"
  chmod 700 "$base"
  if [ ! -s "$base/.erlang.cookie" ]; then
    # Its own cookie: a CLI call without it cannot reach these nodes, nor they the machine's.
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr 'a-f' 'A-F' >"$base/.erlang.cookie"
    chmod 400 "$base/.erlang.cookie"
  fi
  for n in "${nodes[@]}"; do
    local d
    d="$(dir "$n")"
    mkdir -p "$d/mnesia" "$d/log"
    # No plugins: no management or Prometheus listener whose port another node already holds.
    echo '[].' >"$d/enabled_plugins"
    cat >"$d/rabbitmq.conf" <<EOF
listeners.tcp.local = 127.0.0.1:$(amqp_port "$n")
loopback_users.guest = true
# Leaders spread over the nodes, so that a node's loss costs some queues a leader, not all.
queue_leader_locator = balanced
log.file.level = info
log.console = false
EOF
    # A quorum queue elects a new leader once its followers' failure detector (aten) gives the
    # old one up: RabbitMQ polls it every 5 s, so a node that hangs (rather than dies, which
    # closes its connections at once) would cost ~7 s; its own test suites poll every second.
    echo '[{aten, [{poll_interval, 1000}]}].' >"$d/advanced.config"
    cat >"$d/rabbitmq-env.conf" <<EOF
NODENAME=$(name "$n")
NODE_IP_ADDRESS=127.0.0.1
NODE_PORT=$(amqp_port "$n")
DIST_PORT=$(dist_port "$n")
MNESIA_BASE=$d/mnesia
LOG_BASE=$d/log
PID_FILE=$d/pid
ENABLED_PLUGINS_FILE=$d/enabled_plugins
CONFIG_FILE=$d/rabbitmq.conf
ADVANCED_CONFIG_FILE=$d/advanced.config
ERL_EPMD_ADDRESS=127.0.0.1
SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
EOF
  done
}

pid_of() {
  local pidfile
  pidfile="$(dir "$1")/pid"
  [ -s "$pidfile" ] || return 1
  local pid
  pid="$(cat "$pidfile")"
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

running() { pid_of "$1" >/dev/null; }

start_node() {
  local n=$1
  if running "$n"; then
    return
  fi
  local d
  d="$(dir "$n")"
  rm -f "$d/pid"
  # In the background, in its own session, so that it outlives this script and no terminal's
  # signals reach it; every descriptor of it (and of the subshell) goes to its log, so that a
  # caller reading this script's output is not kept waiting by the node.
  (cd "$base" && exec env $(node_env "$n") setsid nohup "$bin/rabbitmq-server") \
    >"$d/log/startup.log" 2>&1 </dev/null &
  # The pid file appears once the VM runs; await_startup waits for the broker itself.
  for _ in $(seq 100); do
    running "$n" && break
    sleep 0.2
  done
  if ! ctl "$n" -q await_startup --timeout 110 >/dev/null 2>&1; then
    echo "node $(name "$n") did not start; see $d/log" >&2
    exit 1
  fi
}

in_cluster() {
  # True when node N's cluster already includes node 1.
  ctl "$1" -q cluster_status --formatter json 2>/dev/null | grep -q "\"$(name 1)\""
}

start() {
  local n
  prepare
  for n in "${nodes[@]}"; do
    start_node "$n"
  done
  for n in 2 3; do
    if ! in_cluster "$n"; then
      ctl "$n" -q stop_app
      ctl "$n" -q join_cluster "$(name 1)"
      ctl "$n" -q start_app
      ctl "$n" -q await_startup --timeout 110
    fi
  done
  status
}

stop_node() {
  local n=$1
  local pid
  pid="$(pid_of "$n")" || return 0
  kill -CONT "$pid" 2>/dev/null || true # a frozen node cannot stop
  ctl "$n" -q stop >/dev/null 2>&1 || kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 150); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.2
  done
  kill -KILL "$pid" 2>/dev/null || true
}

stop() {
  local n
  # The last node to stop is the first to start again without waiting for the others.
  for n in 3 2 1; do
    stop_node "$n"
  done
}

status() {
  local n pid
  for n in "${nodes[@]}"; do
    if pid="$(pid_of "$n")"; then
      echo "$(name "$n") up pid $pid amqp 127.0.0.1:$(amqp_port "$n")"
    else
      echo "$(name "$n") down amqp 127.0.0.1:$(amqp_port "$n")"
    fi
  done
}

kill_node() {
  local n pid
  n="$(node_number "${1:-}")"
  if pid="$(pid_of "$n")"; then
    kill -KILL "$pid"
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    echo "killed $(name "$n") (pid $pid)"
  else
    echo "$(name "$n") is not running"
  fi
}

signal_node() {
  local signal=$1 n pid
  n="$(node_number "${2:-}")"
  if pid="$(pid_of "$n")"; then
    kill "-$signal" "$pid"
    echo "sent SIG$signal to $(name "$n") (pid $pid)"
  else
    echo "$(name "$n") is not running" >&2
    exit 1
  fi
}

restart_node() {
  local n
  n="$(node_number "${1:-}")"
  prepare
  stop_node "$n"
  start_node "$n"
  echo "restarted $(name "$n")"
}

leader() {
  local queue="${1:?leader QUEUE}" n m
  for n in "${nodes[@]}"; do
    running "$n" || continue
    local line
    line="$(ctl "$n" -q list_queues name leader --no-table-headers 2>/dev/null |
      awk -F '\t' -v q="$queue" '$1 == q {print $2}')" || continue
    if [ -n "$line" ]; then
      for m in "${nodes[@]}"; do
        if [ "$line" = "$(name "$m")" ]; then
          echo "$m"
          return
        fi
      done
      echo "queue $queue is led by $line, not a node of this cluster" >&2
      exit 1
    fi
    echo "no queue $queue (or it has no leader right now)" >&2
    exit 1
  done
  echo "no node is running" >&2
  exit 1
}

urls() {
  local n list=()
  for n in "${nodes[@]}"; do
    list+=("amqp://guest:guest@127.0.0.1:$(amqp_port "$n")/%2f")
  done
  (
    IFS=,
    echo "${list[*]}"
  )
}

command="${1:-}"
shift || true
case "$command" in
  start) start ;;
  stop) stop ;;
  clean)
    stop
    rm -rf "$base"
    ;;
  status) status ;;
  kill) kill_node "${1:-}" ;;
  restart) restart_node "${1:-}" ;;
  freeze) signal_node STOP "${1:-}" ;;
  thaw) signal_node CONT "${1:-}" ;;
  leader) leader "${1:-}" ;;
  urls) urls ;;
  ctl)
    n="$(node_number "${1:-}")"
    shift
    ctl "$n" "$@"
    ;;
  *)
    sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
