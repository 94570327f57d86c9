#!/usr/bin/env bash
# spindle beside nginx (worker_processes 1) under wrk: each server pinned to CPU 1,
# wrk -t1 pinned to CPU 0, the same files, one server at a time, rounds interleaved.
# Prints requests/s (or MB/s) per scenario and the ratio spindle / nginx.
#
#   benches/wrk/compare.sh [--rounds N] [--duration SECONDS]
#
# Needs wrk and nginx (apt-get install wrk nginx) and 2+ CPUs. Traffic: 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
rounds=3 duration=10
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    *) echo "usage: $0 [--rounds N] [--duration SECONDS]" >&2; exit 2 ;;
  esac
done
for tool in wrk nginx taskset; do
  command -v "$tool" >/dev/null || { echo "$0: $tool is needed (apt-get install wrk nginx)" >&2; exit 1; }
done
cargo build --release --quiet
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/www"
chmod 755 "$work" # nginx's workers run as an unprivileged user
head -c 1024 /dev/zero | tr '\0' 'a' > "$work/www/index.html"
head -c 102400 /dev/urandom > "$work/www/100k.bin"
lua="benches/wrk"

cat > "$work/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $work/nginx.pid; error_log $work/nginx-error.log;
events { worker_connections 10000; }
http {
  access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000000000; keepalive_timeout 120s;
  types { text/html html; application/octet-stream bin; }
  server { listen 127.0.0.1:18180; root $work/www; }
}
CONF

start() { # name
  case "$1" in
    spindle) taskset -c 1 target/release/spindle --listen 127.0.0.1:18180 --access-log off --idle-timeout 120 --file-cache-valid 1 "$work/www" 2>"$work/spindle.log" & ;;
    nginx) taskset -c 1 nginx -c "$work/nginx.conf" & ;;
  esac
  for _ in $(seq 100); do
    if (exec 3<>/dev/tcp/127.0.0.1/18180) 2>/dev/null; then return; fi
    sleep 0.05
  done
  echo "$1 did not start" >&2; exit 1
}
stop() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
}

# scenario: name, wrk arguments, metric (rps or MBps)
scenarios=(
  "keepalive-1k|-c50 http://127.0.0.1:18180/index.html|rps"
  "pipelined16-1k|-c50 -s $lua/pipeline.lua http://127.0.0.1:18180/index.html -- 16|rps"
  "close-1k|-c50 -H Connection:close http://127.0.0.1:18180/index.html|rps"
  "keepalive-100k|-c50 http://127.0.0.1:18180/100k.bin|MBps"
)
declare -A results
for round in $(seq "$rounds"); do
  for server in spindle nginx; do
    start "$server"
    taskset -c 0 wrk -t1 -c10 -d2s "http://127.0.0.1:18180/index.html" >/dev/null # warm-up
    for s in "${scenarios[@]}"; do
      IFS='|' read -r name args metric <<<"$s"
      # shellcheck disable=SC2086
      case "$args" in *" -s "*) script=() ;; *) script=(-s "$lua/summary.lua") ;; esac
      line=$(taskset -c 0 wrk -t1 -d"${duration}s" --timeout 5s "${script[@]}" $args | grep '^SUMMARY' || true)
      req=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' <<<"$line")
      secs=$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' <<<"$line")
      bytes=$(sed -n 's/.*bytes=\([0-9]*\).*/\1/p' <<<"$line")
      errors=$(sed -n 's/.*errors=\([0-9]*\).*/\1/p' <<<"$line")
      [ "${errors:-0}" = 0 ] || echo "round $round $server $name: $errors errors" >&2
      if [ "$metric" = rps ]; then value=$(awk -v r="$req" -v s="$secs" 'BEGIN{printf "%.0f", r/s}')
      else value=$(awk -v b="$bytes" -v s="$secs" 'BEGIN{printf "%.0f", b/s/1e6}'); fi
      results["$server|$name"]+="$value "
      echo "round $round $server $name: $value $metric" >&2
    done
    stop
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
printf '\n| scenario | spindle | nginx (1 worker) | spindle / nginx |\n|---|---:|---:|---:|\n'
for s in "${scenarios[@]}"; do
  IFS='|' read -r name _ metric <<<"$s"
  a=$(median <<<"${results[spindle|$name]}"); b=$(median <<<"${results[nginx|$name]}")
  printf '| %s (%s) | %s | %s | %s |\n' "$name" "$metric" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else print "-" }')"
done
printf '\nMedians of %s interleaved rounds, %s s per run; server on CPU 1, wrk -t1 on CPU 0; %s.\n' "$rounds" "$duration" "$(nproc) CPUs, $(uname -r)"
