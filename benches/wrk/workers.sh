#!/usr/bin/env bash
# How spindle scales with --workers: the same keep-alive 1 KiB load with 1 and
# with N workers (unpinned), rounds interleaved. Prints requests/s, the server's
# CPU use (100% = one core) and requests per server CPU-second for each.
#
#   benches/wrk/workers.sh [--workers N] [--rounds N] [--duration SECONDS] [--conns N] [--threads N]
#                          [--pipeline DEPTH]
#
# On a machine where wrk shares the cores with the server, requests/s cannot
# double; requests per server CPU-second staying level while CPU use grows is
# what shows the workers scale (no shared state to contend for). --pipeline 16
# makes the client's share per request small, so that the server's cores are
# the limit even here. Run the client on another machine for the plain
# keep-alive figure. Needs wrk. Traffic: 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
workers=2 rounds=3 duration=10 conns=100 threads=2 pipeline=0
while [ $# -gt 0 ]; do
  case "$1" in
    --workers) workers=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --conns) conns=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --pipeline) pipeline=$2; shift 2 ;;
    *) echo "usage: $0 [--workers N] [--rounds N] [--duration SECONDS] [--conns N] [--threads N]" >&2; exit 2 ;;
  esac
done
command -v wrk >/dev/null || { echo "$0: wrk is needed (apt-get install wrk)" >&2; exit 1; }
cargo build --release --quiet
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/www"
head -c 1024 /dev/zero | tr '\0' 'a' > "$work/www/index.html"
ticks=$(getconf CLK_TCK)

cpu_ticks() { # pid: user + system ticks of the whole process
  awk '{ print $14 + $15 }' "/proc/$1/stat"
}

run() { # workers
  target/release/spindle --listen 127.0.0.1:18181 --workers "$1" --access-log off --idle-timeout 120 \
    --file-cache-valid 1 "$work/www" 2>"$work/spindle.log" &
  local pid=$!
  for _ in $(seq 100); do
    if (exec 3<>/dev/tcp/127.0.0.1/18181) 2>/dev/null; then break; fi
    sleep 0.05
  done
  local before after rps
  before=$(cpu_ticks "$pid")
  local script=()
  if [ "$pipeline" -gt 0 ]; then script=(-s benches/wrk/pipeline.lua); fi
  rps=$(wrk -t"$threads" -c"$conns" -d"${duration}s" "${script[@]}" http://127.0.0.1:18181/index.html \
    ${script:+-- "$pipeline"} | awk '/Requests\/sec/ { print $2 }')
  after=$(cpu_ticks "$pid")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  awk -v rps="$rps" -v t="$((after - before))" -v hz="$ticks" -v d="$duration" -v w="$1" 'BEGIN {
    cpu = t / hz / d; printf "workers=%d  %10.0f req/s  server CPU %4.0f%%  %10.0f req per server CPU-s\n", w, rps, cpu * 100, rps / cpu
  }'
}

for round in $(seq "$rounds"); do
  echo "round $round"
  run 1
  run "$workers"
done
