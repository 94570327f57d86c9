#!/usr/bin/env bash
# spindle beside nginx (worker_processes 1) and, when installed, lighttpd (one
# process) and h2o (one thread) under wrk: each server pinned to CPU 1, wrk -t1
# pinned to CPU 0, the same files, one server at a time, rounds interleaved.
# Prints, per scenario, requests/s (or MB/s), the same per second of server CPU
# (one wrk thread is often the bottleneck, so this is what tells servers apart),
# and the ratios spindle / each other server, then keep-alive latency by round.
# Each server serves files and listings with its defaults, no access log and long
# keep-alive; spindle trusts cached files for a second (--file-cache-valid 1).
#
# --paired runs each other server at the same time as spindle instead, both on
# CPU 1, each with its own wrk on CPU 0, and prints spindle's requests (or MB)
# per server CPU-second divided by the other's, by round. Whatever else the host
# does then falls on both alike: the ratios hold to about ±1% where those of
# servers run one after the other swing by ±10% on a shared machine. Both
# servers are busy there (each has about half a core), not waiting on wrk, so
# the ratio is that of their costs per request under load.
#
#   benches/wrk/compare.sh [--rounds N] [--duration SECONDS] [--servers "spindle nginx ..."] [--paired]
#
# --servers may name `limit`, the canned-response floor of the shared benchmark
# harness (../shared/bench/limit, or the binary in $LIMIT_BIN); it answers
# anything with a 1 KiB body, so it runs the 1 KiB scenarios only.
#
# Needs wrk, curl and nginx (apt-get install wrk curl nginx; lighttpd and h2o are optional)
# and 2+ CPUs. Traffic: 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
rounds=3 duration=10 servers="" paired=no
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --servers) servers=$2; shift 2 ;;
    --paired) paired=yes; shift ;;
    *) echo "usage: $0 [--rounds N] [--duration SECONDS] [--servers \"spindle nginx lighttpd h2o\"] [--paired]" >&2; exit 2 ;;
  esac
done
limit_bin=${LIMIT_BIN:-../shared/bench/limit/target/release/bench-limit}
if [[ " $servers " == *" limit "* ]] && [ ! -x "$limit_bin" ]; then
  cargo build --release --quiet --manifest-path "$(dirname "$limit_bin")/../../Cargo.toml" ||
    { echo "$0: no $limit_bin (set LIMIT_BIN)" >&2; exit 1; }
fi
for tool in wrk curl nginx taskset; do
  command -v "$tool" >/dev/null || { echo "$0: $tool is needed (apt-get install wrk nginx)" >&2; exit 1; }
done
if [ -z "$servers" ]; then
  servers="spindle nginx"
  for s in lighttpd h2o; do
    if command -v "$s" >/dev/null; then servers+=" $s"; else echo "$0: $s not installed, left out" >&2; fi
  done
fi
cargo build --release --quiet
work=$(mktemp -d)
cleanup() {
  local f
  # shellcheck disable=SC2046 # one pid per word
  kill $(jobs -p) 2>/dev/null || true
  for f in "$work"/nginx-*.pid; do
    if [ -f "$f" ]; then kill "$(cat "$f")" 2>/dev/null || true; fi
  done
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/www/list" "$work/run"
chmod 755 "$work" "$work/www" "$work/www/list" # the servers' workers may run as an unprivileged user
chmod 777 "$work/run"
head -c 1024 /dev/zero | tr '\0' 'a' > "$work/www/index.html"
head -c 102400 /dev/urandom > "$work/www/100k.bin"
for i in $(seq 1000); do printf 'file %d\n' "$i" > "$work/www/list/file-$i.txt"; done
chmod -R a+r "$work/www"
lua="benches/wrk"
port=18180 # spindle's; in --paired, the other server listens on the next port

# Each server's configuration for listening on port $1.
write_configs() {
  local p=$1
  cat > "$work/nginx-$p.conf" <<CONF
worker_processes 1; daemon off; pid $work/nginx-$p.pid; error_log $work/run/nginx-error-$p.log;
events { worker_connections 10000; }
http {
  access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000000000; keepalive_timeout 120s;
  types { text/html html; text/plain txt; application/octet-stream bin; }
  server { listen 127.0.0.1:$p; root $work/www; autoindex on; }
}
CONF
  cat > "$work/lighttpd-$p.conf" <<CONF
server.modules = ( "mod_dirlisting" )
server.document-root = "$work/www"
server.bind = "127.0.0.1"
server.port = $p
server.errorlog = "$work/run/lighttpd-error-$p.log"
server.event-handler = "linux-sysepoll"
server.network-backend = "sendfile"
server.max-worker = 0
server.max-keep-alive-requests = 65535
server.max-keep-alive-idle = 120
index-file.names = ( "index.html" )
dir-listing.activate = "enable"
mimetype.assign = ( ".html" => "text/html", ".txt" => "text/plain", "" => "application/octet-stream" )
CONF
  cat > "$work/h2o-$p.conf" <<CONF
num-threads: 1
http1-request-timeout: 120
error-log: $work/run/h2o-error-$p.log
pid-file: $work/run/h2o-$p.pid
listen:
  host: 127.0.0.1
  port: $p
hosts:
  default:
    paths:
      /:
        file.dir: $work/www
        file.dirlisting: ON
CONF
  # Run as root, lighttpd and h2o would switch to an unprivileged user.
  if [ "$(id -u)" = 0 ]; then
    printf 'server.username = "nobody"\nserver.groupname = "nogroup"\n' >> "$work/lighttpd-$p.conf"
    printf 'user: nobody\n' >> "$work/h2o-$p.conf"
  fi
}
write_configs "$port"
write_configs "$((port + 1))"

started=""
start() { # name port: starts the server on CPU 1 and sets $started to its pid
  local p=$2
  case "$1" in
    spindle) taskset -c 1 target/release/spindle --listen "127.0.0.1:$p" --access-log off --idle-timeout 120 \
      --listing --file-cache-valid 1 "$work/www" 2>"$work/run/spindle-$p.log" & ;;
    nginx) taskset -c 1 nginx -c "$work/nginx-$p.conf" & ;;
    lighttpd) taskset -c 1 lighttpd -D -f "$work/lighttpd-$p.conf" & ;;
    h2o) taskset -c 1 h2o -m worker -c "$work/h2o-$p.conf" >/dev/null 2>&1 & ;;
    limit) taskset -c 1 "$limit_bin" "127.0.0.1:$p" 2>/dev/null & ;;
    *) echo "$0: unknown server $1" >&2; exit 2 ;;
  esac
  started=$!
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then return; fi
    sleep 0.05
  done
  echo "$1 did not start" >&2; exit 1
}
stop() {
  # shellcheck disable=SC2046 # one pid per word
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
}
# CPU time (clock ticks) of server $1 and its worker processes so far.
cpu_ticks() {
  local total=0 p
  for p in $1 $(pgrep -P "$1" || true); do
    [ -r "/proc/$p/stat" ] || continue
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
hz=$(getconf CLK_TCK)
# Ticks the hypervisor took from CPUs 0 and 1 (steal) so far: a run that lost
# some has a worse tail latency whichever server ran, so latency is shown with it.
steal_ticks() { awk '/^cpu[01] /{t += $9} END{print t + 0}' /proc/stat; }

# scenario: name | connections | path | how (keep-alive, pipelined, close) | metric (rps or MBps)
scenarios=(
  "keepalive-1k|50|/index.html|keep-alive|rps"
  "conns1000-1k|1000|/index.html|keep-alive|rps"
  "pipelined16-1k|50|/index.html|pipelined|rps"
  "close-1k|50|/index.html|close|rps"
  "keepalive-100k|50|/100k.bin|keep-alive|MBps"
  "listing-1000|10|/list/|keep-alive|rps"
)
# Whether server $1 runs scenario $2 (the floor answers every path alike).
runs() { [ "$1" != limit ] || [[ "$2" == *-1k\|* ]]; }
# Every server must answer every path with 200 before it is measured.
sanity() { # name port
  local s name path status
  for s in "${scenarios[@]}"; do
    runs "$1" "$s" || continue
    IFS='|' read -r name _ path _ _ <<<"$s"
    status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$2$path" || true)
    [ "$status" = 200 ] || { echo "$0: $1 answered $status to $path" >&2; exit 1; }
  done
  taskset -c 0 wrk -t1 -c10 -d2s "http://127.0.0.1:$2/index.html" >/dev/null # warm-up
}
# One wrk run of scenario $1 against port $2, pinned to CPU 0: its SUMMARY line.
load() {
  local conns path how args
  IFS='|' read -r _ conns path how _ <<<"$1"
  args=(-c"$conns")
  case "$how" in
    pipelined) args+=(-s "$lua/pipeline.lua" "http://127.0.0.1:$2$path" -- 16) ;;
    close) args+=(-s "$lua/summary.lua" -H "Connection: close" "http://127.0.0.1:$2$path") ;;
    *) args+=(-s "$lua/summary.lua" "http://127.0.0.1:$2$path") ;;
  esac
  taskset -c 0 wrk -t1 -d"${duration}s" --timeout 5s "${args[@]}" | grep '^SUMMARY' || true
}
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$2"; }
# What a SUMMARY line $2 of scenario $1 comes to, "amount-per-second amount-per-CPU-second"
# given the server's CPU ticks $3; $4 names the run. Only successful answers count
# (lighttpd answers most listings under load with an error status).
figures() {
  local name metric req secs bytes errors status_errors amount
  IFS='|' read -r name _ _ _ metric <<<"$1"
  req=$(field requests "$2") secs=$(field seconds "$2") bytes=$(field bytes "$2")
  errors=$(field errors "$2") status_errors=$(field status_errors "$2")
  [ "${errors:-0}" = 0 ] || echo "$4 $name: $errors errors, $status_errors of them error statuses (not counted)" >&2
  if [ "$metric" = rps ]; then amount=$((req - ${status_errors:-0})); else amount=$(awk -v b="$bytes" 'BEGIN{printf "%.0f", b/1e6}'); fi
  awk -v a="$amount" -v s="$secs" -v c="$3" -v hz="$hz" \
    'BEGIN{ printf "%.0f ", (s > 0 ? a/s : 0); if (c > 0) printf "%.0f\n", a*hz/c; else print 0 }'
}

declare -A results per_cpu latency pair
others=${servers/spindle/}
if [ "$paired" = yes ]; then
  for round in $(seq "$rounds"); do
    for other in $others; do
      start spindle "$port"; a=$started
      start "$other" "$((port + 1))"; b=$started
      sanity spindle "$port"
      sanity "$other" "$((port + 1))"
      for s in "${scenarios[@]}"; do
        runs "$other" "$s" || continue
        IFS='|' read -r name _ _ _ metric <<<"$s"
        a0=$(cpu_ticks "$a") b0=$(cpu_ticks "$b")
        load "$s" "$((port + 1))" >"$work/other.out" &
        other_load=$!
        line=$(load "$s" "$port")
        wait "$other_load"
        read -r _ eff_a <<<"$(figures "$s" "$line" $(( $(cpu_ticks "$a") - a0 )) "round $round spindle")"
        read -r _ eff_b <<<"$(figures "$s" "$(cat "$work/other.out")" $(( $(cpu_ticks "$b") - b0 )) "round $round $other")"
        r=$(awk -v a="$eff_a" -v b="$eff_b" 'BEGIN{ if (b > 0) printf "%.3f", a/b; else print "-" }')
        pair["$other|$name"]+="$r "
        echo "round $round spindle / $other $name: $eff_a / $eff_b $metric per server CPU-second = $r" >&2
      done
      stop
    done
  done
else
  for round in $(seq "$rounds"); do
    for server in $servers; do
      start "$server" "$port"
      sanity "$server" "$port"
      for s in "${scenarios[@]}"; do
        runs "$server" "$s" || continue
        IFS='|' read -r name _ _ _ metric <<<"$s"
        before=$(cpu_ticks "$started") stolen=$(steal_ticks)
        line=$(load "$s" "$port")
        read -r value eff <<<"$(figures "$s" "$line" $(( $(cpu_ticks "$started") - before )) "round $round $server")"
        stolen=$(awk -v t="$(( $(steal_ticks) - stolen ))" -v d="$duration" -v hz="$hz" 'BEGIN{printf "%.1f", 100*t/(2*d*hz)}')
        results["$server|$name"]+="$value "
        per_cpu["$server|$name"]+="$eff "
        if [ "$name" = keepalive-1k ]; then
          latency["$server"]+="$(sed -n 's/.*p50_ms=\([0-9.]*\) p99_ms=\([0-9.]*\).*/\1\/\2/p' <<<"$line") ($stolen%) "
        fi
        echo "round $round $server $name: $value $metric, $eff per server CPU-second; $stolen% of CPUs 0-1 stolen by the host" >&2
      done
      stop
    done
  done
fi

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else print "-" }'; }
table() { # title, array name
  local -n values=$2
  printf '\n%s\n\n| scenario |' "$1"
  for s in $servers; do printf ' %s |' "$s"; done
  for o in $others; do printf ' spindle / %s |' "$o"; done
  printf '\n|---|'
  for _ in $servers $others; do printf -- '---:|'; done
  printf '\n'
  for sc in "${scenarios[@]}"; do
    IFS='|' read -r name _ _ _ metric <<<"$sc"
    printf '| %s (%s) |' "$name" "$metric"
    for s in $servers; do printf ' %s |' "$(median <<<"${values[$s|$name]:-}")"; done
    a=$(median <<<"${values[spindle|$name]:-}")
    for o in $others; do printf ' %s |' "$(ratio "$a" "$(median <<<"${values[$o|$name]:-}")")"; done
    printf '\n'
  done
}
if [ "$paired" = yes ]; then
  printf '\nspindle'"'"'s requests (MBps: MB) per server CPU-second divided by the other'"'"'s, both running at once; median [by round]:\n\n| scenario |'
  for o in $others; do printf ' spindle / %s |' "$o"; done
  printf '\n|---|'
  for _ in $others; do printf -- '---:|'; done
  printf '\n'
  for sc in "${scenarios[@]}"; do
    IFS='|' read -r name _ _ _ metric <<<"$sc"
    printf '| %s (%s) |' "$name" "$metric"
    for o in $others; do
      if [ -n "${pair[$o|$name]:-}" ]; then
        printf ' %.2f [%s] |' "$(median <<<"${pair[$o|$name]}")" "$(xargs <<<"${pair[$o|$name]}")"
      else
        printf ' – |'
      fi
    done
    printf '\n'
  done
  printf '\n%s rounds, %s s per run; both servers on CPU 1, one wrk -t1 each on CPU 0; %s.\n' \
    "$rounds" "$duration" "$(nproc) CPUs, $(uname -r)"
  exit 0
fi
table "Per second (MBps: MB per second):" results
table "Per second of server CPU (what tells servers apart when wrk is the bottleneck):" per_cpu
printf '\nLatency of keepalive-1k, p50/p99 ms (and the share of CPUs 0-1 the host stole meanwhile), by round:\n\n'
for s in $servers; do printf -- '- %s: %s\n' "$s" "${latency[$s]:-}"; done
printf '\nMedians of %s interleaved rounds, %s s per run; server on CPU 1, wrk -t1 on CPU 0; %s.\n' \
  "$rounds" "$duration" "$(nproc) CPUs, $(uname -r)"
