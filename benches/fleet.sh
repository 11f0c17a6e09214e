#!/usr/bin/env bash
# fetchq's fleet benchmark: many `fetchq worker` processes on one Redis.
#
#   benches/fleet.sh [--quick] [--entries N] [--workers LIST] [--jobs J]
#                    [--enqueue-lines M] [--fetchq PATH] [--runs R]
#                    [--stats-dir DIR] [--worker-args "ARGS"]
#
# Starts its own redis-server (no persistence) and nginx on 127.0.0.1,
# serves N generated 4 KiB files from /dev/shm (the disk stays out of the
# figures), and in each of R rounds runs a local `fetchq -j J` of the list,
# then for 1, 2, 4 and 8 worker processes (`worker --drain -j J` each)
# enqueues the N URLs and times the drain. Prints, per row: wall seconds,
# entries/s, Redis CPU per entry (the server process's own CPU, and the
# `INFO commandstats` usec, which counts command execution only), Redis
# round trips per entry and Redis memory per queued entry; then the median
# wall time of each row and its ratio to the local median. Then: `enqueue`
# of M generated lines (time, entries/s, peak RSS) and `status` on that
# queue of M.
# --stats-dir keeps each run's INFO commandstats (DIR/commandstats-W-R.txt).
# --worker-args adds ARGS (split on spaces) to every worker, e.g.
# "--global-limits --per-host 64" to measure what the shared limits cost.
# --quick: 5,000 entries and 100,000 enqueued lines (about a minute).
set -euo pipefail
export LC_ALL=C
umask 022   # nginx's worker drops root and must still read the data
PATH=$PATH:/usr/sbin:/sbin

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd -- "$HERE/.." && pwd)

ENTRIES=100000 WORKERS="1 2 4 8" JOBS=8 LINES=1000000 RUNS=1
FETCHQ=$ROOT/target/release/fetchq STATS_DIR="" WORKER_ARGS=""
while (($#)); do
    case $1 in
        --quick) ENTRIES=5000 LINES=100000; shift ;;
        --entries|--workers|--jobs|--enqueue-lines|--fetchq|--runs|--stats-dir|--worker-args)
            [[ $# -ge 2 ]] || { echo "fleet.sh: $1 needs a value" >&2; exit 2; }
            case $1 in
                --entries) ENTRIES=$2 ;; --workers) WORKERS=$2 ;; --jobs) JOBS=$2 ;;
                --enqueue-lines) LINES=$2 ;; --fetchq) FETCHQ=$2 ;; --runs) RUNS=$2 ;;
                --stats-dir) STATS_DIR=$2 ;; --worker-args) WORKER_ARGS=$2 ;;
            esac
            shift 2 ;;
        -h|--help) sed -n '2,20s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "fleet.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[[ -x $FETCHQ ]] || { echo "fleet.sh: no fetchq at $FETCHQ (cargo build --release)" >&2; exit 2; }
for tool in redis-server redis-cli nginx /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "fleet.sh: needs $tool" >&2; exit 2; }
done

WORK=$(mktemp -d -p /dev/shm fetchq-fleet.XXXXXX)
chmod 755 "$WORK"
mkdir -p "$WORK/data" "$WORK/nginx/tmp" "$WORK/logs"
REDIS_PID="" NGINX_PID=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [[ -n $REDIS_PID ]] && kill "$REDIS_PID" 2>/dev/null && wait "$REDIS_PID" 2>/dev/null
    if [[ -n $NGINX_PID ]]; then
        kill -TERM -- "-$NGINX_PID" 2>/dev/null || kill -TERM "$NGINX_PID" 2>/dev/null || true
        wait "$NGINX_PID" 2>/dev/null || true
    fi
    rm -rf -- "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# ------------------------------------------------------------------ servers
RPORT=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$WORK" --logfile "$WORK/logs/redis.log" &
REDIS_PID=$!
REDIS=redis://127.0.0.1:$RPORT/
rcli() { redis-cli -p "$RPORT" "$@"; }
for ((i = 0; i < 100; i++)); do rcli ping >/dev/null 2>&1 && break; sleep 0.05; done
rcli ping >/dev/null

HPORT=$(free_port)
cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/logs/nginx.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    types { }
    default_type application/octet-stream;
    client_body_temp_path $WORK/nginx/tmp;
    proxy_temp_path $WORK/nginx/tmp;
    fastcgi_temp_path $WORK/nginx/tmp;
    uwsgi_temp_path $WORK/nginx/tmp;
    scgi_temp_path $WORK/nginx/tmp;
    server { listen 127.0.0.1:$HPORT; root $WORK/data; }
}
EOF
setsid nginx -c "$WORK/nginx/nginx.conf" &
NGINX_PID=$!

# N files of 4 KiB, f000000 .. , and the list of their URLs.
head -c $((ENTRIES * 4096)) /dev/urandom | (cd "$WORK/data" && split -b 4096 -a 6 -d - f)
seq -f "http://127.0.0.1:$HPORT/f%06.0f" 0 $((ENTRIES - 1)) >"$WORK/list.txt"
for ((i = 0; i < 100; i++)); do
    curl -sf -o /dev/null "http://127.0.0.1:$HPORT/f000000" 2>/dev/null && break
    python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$HPORT/f000000')" 2>/dev/null && break
    sleep 0.05
done

info() { rcli info "$1" | tr -d '\r'; }
field() { info "$1" | awk -F: -v k="$2" '$1 == k { print $2 }'; }
redis_cpu() { info cpu | awk -F: '$1 == "used_cpu_user" || $1 == "used_cpu_sys" { s += $2 } END { printf "%.6f", s }'; }
# From INFO commandstats: usec of what clients sent as one request.
# Commands run inside a script or a MULTI block are counted twice there (in
# EVALSHA or EXEC, and under their own name), so the commands fetchq runs
# that way are left out (LMOVE is not: a claim sends its LMOVEs alone, in
# one pipelined write); of those, only the heartbeat's SADD (one per worker
# every TTL/3), and status's EXISTS and LLENs per worker and its HLENs are
# also sent alone.
NESTED='^(multi|set|rpop|hset|hget|hmget|hdel|lrem|lrange|llen|ltrim|hexists|sadd|rpush|lpush|del|srem|hscan|hgetall|hincrby|hlen|exists|time|pexpire)$'
cmdstats() {
    info commandstats | awk -F'[_:=,]' -v nested="$NESTED" '
        /^cmdstat_/ { if ($2 !~ nested) usec += $6 }
        END { printf "%d\n", usec }'
}

echo "# fleet.sh: $ENTRIES entries of 4 KiB, workers: $WORKERS, -j $JOBS each, $RUNS run(s); $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg) at start"
echo "# fetchq: $FETCHQ; $(redis-server --version | cut -d' ' -f3); worker args: ${WORKER_ARGS:-none}"

# ------------------------------------------------------------------ rounds
# Each round runs the local baseline and then every worker count, so a
# slow spell of the machine falls on all rows of a round alike; the
# summary compares medians.
local_run() {
    local out
    out=$(mktemp -d -p "$WORK" out-local.XXXX)
    /usr/bin/time -f "%e %M" -o "$WORK/time" "$FETCHQ" -q -j "$JOBS" -d "$out" "$WORK/list.txt" >/dev/null 2>"$WORK/logs/local.err" \
        || { echo "local run failed:"; cat "$WORK/logs/local.err"; exit 1; }
    read -r wall _ <"$WORK/time"
    printf '%-8s %8.2f %10.0f\n' local "$wall" "$(echo "$ENTRIES / $wall" | bc -l)"
    echo "local $wall" >>"$WORK/walls"
    rm -rf "$out"
}

workers_run() {  # w r
    local w=$1 r=$2 out mem0 mem1 cpu0 cpu1 t0 t1 usec calls done_n wall i p pids=()
    rcli flushall >/dev/null
    mem0=$(field memory used_memory)
    "$FETCHQ" enqueue --redis "$REDIS" "$WORK/list.txt" >/dev/null 2>"$WORK/logs/enqueue.err" \
        || { cat "$WORK/logs/enqueue.err"; exit 1; }
    mem1=$(field memory used_memory)
    rcli config resetstat >/dev/null
    cpu0=$(redis_cpu)
    out=$(mktemp -d -p "$WORK" out-w.XXXX)
    t0=$EPOCHREALTIME
    for ((i = 0; i < w; i++)); do
        # shellcheck disable=SC2086 # WORKER_ARGS is a list of words
        "$FETCHQ" worker --redis "$REDIS" --drain -q -j "$JOBS" -d "$out" $WORKER_ARGS \
            >/dev/null 2>"$WORK/logs/worker$i.err" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do
        wait "$p" || { echo "a worker failed:"; cat "$WORK"/logs/worker*.err; exit 1; }
    done
    t1=$EPOCHREALTIME
    cpu1=$(redis_cpu)
    usec=$(cmdstats)
    # Round trips: the reads Redis made from clients' sockets (a pipeline
    # sent in one write is read at once), the bench's own few INFO calls
    # included.
    calls=$(field stats total_reads_processed)
    done_n=$(rcli hlen fetchq:default:done)
    [[ $done_n == "$ENTRIES" ]] || { echo "only $done_n of $ENTRIES done"; cat "$WORK"/logs/worker*.err; exit 1; }
    wall=$(echo "$t1 - $t0" | bc -l)
    [[ -z $STATS_DIR ]] || { mkdir -p "$STATS_DIR"; info commandstats >"$STATS_DIR/commandstats-$w-$r.txt"; }
    printf '%-8s %8.2f %10.0f %14.1f %14.1f %14.2f %12.0f\n' "$w" "$wall" \
        "$(echo "$ENTRIES / $wall" | bc -l)" \
        "$(echo "($cpu1 - $cpu0) * 1000000 / $ENTRIES" | bc -l)" \
        "$(echo "$usec / $ENTRIES" | bc -l)" \
        "$(echo "$calls / $ENTRIES" | bc -l)" \
        "$(echo "($mem1 - $mem0) / $ENTRIES" | bc -l)"
    echo "$w $wall" >>"$WORK/walls"
    rm -rf "$out"
}

printf '%-8s %8s %10s %14s %14s %14s %12s\n' workers "wall s" entries/s "redis cpu us/e" "cmdstat us/e" "round trips/e" "mem B/entry"
: >"$WORK/walls"
for ((r = 1; r <= RUNS; r++)); do
    local_run
    for w in $WORKERS; do
        workers_run "$w" "$r"
    done
done
# Medians of each row, and each against the local median.
awk '{ v[$1] = v[$1] " " $2 } END {
        for (k in v) print k, v[k]
    }' "$WORK/walls" | sort -k1,1n | awk '
    function median(line,   a, n, i, j, t) {
        n = split(line, a, " ")
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    { row = $1; $1 = ""; m[row] = median($0); order[++k] = row }
    END {
        printf "medians:"
        for (i = 1; i <= k; i++) {
            r = order[i]
            if (r == "local") printf "  local %.2f s", m[r]
            else printf "  %s worker(s) %.2f s (%.2fx local)", r, m[r], m[r] / m["local"]
        }
        printf "\n"
    }'

# ------------------------------------------------------------------ enqueue and status at scale
((LINES > 0)) || exit 0
rcli flushall >/dev/null
seq -f "http://127.0.0.1:1/e%07.0f" 0 $((LINES - 1)) >"$WORK/big.txt"
/usr/bin/time -f "%e %M" -o "$WORK/time" "$FETCHQ" enqueue --redis "$REDIS" "$WORK/big.txt" >/dev/null 2>"$WORK/logs/big.err" \
    || { cat "$WORK/logs/big.err"; exit 1; }
read -r wall rss <"$WORK/time"
printf 'enqueue %d lines: %.2f s, %.0f entries/s, peak RSS %d KiB; Redis used_memory %s\n' "$LINES" "$wall" \
    "$(echo "$LINES / $wall" | bc -l)" "$rss" "$(field memory used_memory_human)"
t0=$EPOCHREALTIME
"$FETCHQ" status --redis "$REDIS" >/dev/null 2>&1
t1=$EPOCHREALTIME
printf 'status on a queue of %d: %.3f s\n' "$(rcli llen fetchq:default:pending)" "$(echo "$t1 - $t0" | bc -l)"
echo "# load $(cut -d' ' -f1-3 /proc/loadavg) at end"
