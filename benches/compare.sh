#!/usr/bin/env bash
# fetchq's own reproducible benchmark: fetchq against curl, wget2 and aria2c.
#
#   benches/compare.sh [--quick] [--runs N] [--fetchq PATH] [--tools LIST]
#                      [--scenarios LIST] [--tmpfs] [--out FILE]
#
# Serves generated data from a private nginx on 127.0.0.1 and times every
# tool on the same URL lists, runs interleaved round-robin. Progress goes to
# stderr; the Markdown report goes to stdout and to FILE
# (default benches/results/latest.md), with the raw runs in FILE's .tsv twin.
set -euo pipefail
export LC_ALL=C   # '.' as decimal point in EPOCHREALTIME, awk and time(1)
umask 022         # nginx's worker drops root and must still read the data
PATH=$PATH:/usr/sbin:/sbin

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd -- "$HERE/.." && pwd)
# The command line for the report, quoted only where the shell needs it.
CMDLINE=benches/compare.sh
for a in "$@"; do
    if [[ $a =~ ^[A-Za-z0-9_./,=:+-]+$ ]]; then CMDLINE+=" $a"; else CMDLINE+=" $(printf '%q' "$a")"; fi
done

JOBS=8
# Seconds per tool run (timeout(1)); a run that hits it is marked failed.
# COMPARE_TIMEOUT overrides it (the tests of this script use a short one).
RUN_LIMIT=${COMPARE_TIMEOUT:-120}
RATE_SPEC=4M         # ratelimit scenario: fetchq --limit-rate value ...
RATE_BYTES=$((4 * 1024 * 1024))   # ... and the rate it promises, bytes/s
ALL_TOOLS=(fetchq curl wget2 aria2c)
SPLIT_RATE=4m        # split scenario: nginx limit_rate per connection
SPLIT_CONNS=8        # ... and the connections the splitting tools open
# mirrors scenario: what makes aria2c leave a source that never answers.
# Its defaults (--timeout=60 --max-tries=5) try the first source 5 times
# before the second: by hand, still waiting after 200 s; --timeout=1 alone
# moved on after 5 s.
ARIA2_MIRROR_FLAGS=(--timeout=1 --max-tries=1)

usage() {
    sed -n '2,10s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
    cat <<'EOF'

  --quick           smaller scenarios, 1 run each (unless --runs is given)
  --runs N          timed runs per tool and scenario (default 3)
  --fetchq PATH     fetchq binary (default: target/release/fetchq of this
                    checkout); missing means fetchq is skipped, not an error
  --tools LIST      comma-separated subset of: fetchq,curl,wget2,aria2c
  --scenarios LIST  comma-separated subset of:
                    small,large,medium,ratelimit,split,mirrors
  --tmpfs           work in /dev/shm: takes the disk out of the measurement
  --out FILE        report file (default benches/results/latest.md)

Each tool run is limited to 120 s (environment: COMPARE_TIMEOUT=seconds).
EOF
}

FETCHQ=$ROOT/target/release/fetchq QUICK=0 RUNS="" TOOLS_ARG="" SCEN_ARG=""
TMPFS=0 OUT_MD=$HERE/results/latest.md
while (($#)); do
    case $1 in
        --quick) QUICK=1; shift ;;
        --tmpfs) TMPFS=1; shift ;;
        --runs|--fetchq|--tools|--scenarios|--out)
            [[ $# -ge 2 ]] || { echo "compare.sh: $1 needs a value" >&2; exit 2; }
            case $1 in
                --runs) RUNS=$2 ;; --fetchq) FETCHQ=$2 ;; --tools) TOOLS_ARG=$2 ;;
                --scenarios) SCEN_ARG=$2 ;; --out) OUT_MD=$2 ;;
            esac
            shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "compare.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done
[[ -n $RUNS ]] || RUNS=$((QUICK ? 1 : 3))
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: --runs must be a positive integer" >&2; exit 2; }
# Relative paths are taken from where the user stands, before any cd.
[[ $OUT_MD == /* ]] || OUT_MD=$PWD/$OUT_MD
[[ $FETCHQ == */* ]] || FETCHQ=$(command -v -- "$FETCHQ" || echo "$FETCHQ")
[[ $FETCHQ == /* ]] || FETCHQ=$PWD/$FETCHQ

log() { printf '[%4ds] %s\n' "$SECONDS" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ------------------------------------------------------------- installing

# Command -> Debian package. `time` means GNU time at /usr/bin/time: bash's
# keyword of the same name reports neither peak RSS nor into a file.
ensure_tools() {
    local -A pkg=([nginx]=nginx [aria2c]=aria2 [wget2]=wget2 [curl]=curl
                  [hyperfine]=hyperfine [python3]=python3 [timeout]=coreutils)
    local missing=() c
    for c in "${!pkg[@]}"; do
        command -v "$c" >/dev/null 2>&1 || missing+=("${pkg[$c]}")
    done
    [[ -x /usr/bin/time ]] || missing+=(time)
    ((${#missing[@]})) || return 0
    [[ $EUID == 0 ]] || die "missing packages: ${missing[*]} (run as root, or apt-get install them)"
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    timeout 600 apt-get update -qq >&2
    timeout 900 apt-get install -y -qq "${missing[@]}" >&2
}
ensure_tools

# ------------------------------------------------------- tools, scenarios

ALL_SCEN=$(python3 "$HERE/compare.py" scenarios)
SCENARIOS=()
IFS=, read -r -a SCENARIOS <<<"${SCEN_ARG:-$ALL_SCEN}"
for s in "${SCENARIOS[@]}"; do
    [[ ,$ALL_SCEN, == *,$s,* ]] || die "unknown scenario '$s' (known: $ALL_SCEN)"
done
TOOLS=()
IFS=, read -r -a want <<<"${TOOLS_ARG:-$(IFS=,; echo "${ALL_TOOLS[*]}")}"
for t in "${want[@]}"; do
    [[ " ${ALL_TOOLS[*]} " == *" $t "* ]] || die "unknown tool '$t' (known: ${ALL_TOOLS[*]})"
done
NOTES=()
for t in "${ALL_TOOLS[@]}"; do   # keep a fixed order whatever --tools says
    [[ " ${want[*]} " == *" $t "* ]] || continue
    if [[ $t == fetchq && ! -x $FETCHQ ]]; then
        log "fetchq: no executable at $FETCHQ (run 'cargo build --release'?): skipping fetchq"
        NOTES+=("fetchq skipped: no executable at \`$FETCHQ\`")
        continue
    fi
    TOOLS+=("$t")
done
((${#TOOLS[@]})) || die "no tool left to run"
HAVE_FETCHQ=0
[[ " ${TOOLS[*]} " == *" fetchq "* ]] && HAVE_FETCHQ=1

# ------------------------------------------------------------ work, exit

if ((TMPFS)); then
    WORK=$(mktemp -d -p /dev/shm fetchq-compare.XXXXXX)
else
    WORK=$(mktemp -d -t fetchq-compare.XXXXXX)
fi
chmod 755 "$WORK"   # mktemp makes it 0700; nginx's worker runs as nobody
# On ext4 without a journal (this machine's /tmp), allocating an inode walks
# past every inode freed in the last minutes, one by one; after anyone's
# mass delete (our own previous run's cleanup included), creating 2,000
# files gets several times slower, mostly in system time. The TOPDIR flag
# makes ext4 place each folder created in $WORK in a block group picked from
# a hash of the folder's name. So every run's output folder is created right
# here with a random name (new_outdir): each lands in its own group, away
# from deletions by earlier runs of this script and by tools that unlink
# their temp/control files (aria2c does). A fixed name would land in the
# same group every time. During the run we never delete (reset_previous).
# Where the flag is not supported this is harmless.
chattr +T "$WORK" 2>/dev/null || true
mkdir -p "$WORK/logs" "$WORK/home" "$WORK/tmp" "$WORK/nginx/tmp"
new_outdir() {  # label -> prints a fresh, empty folder
    mktemp -d "$WORK/out-$1.XXXXXXXX"
}
: >"$WORK/runs.tsv"

NGINX_PID="" CHILD="" STALL_PID=""
cleanup() {
    local rc=$? i
    trap - EXIT INT TERM
    # A tool still running (Ctrl-C mid-run): timeout(1) leads its own
    # process group, so signal the group to take the tool's children too.
    if [[ -n $CHILD ]]; then
        kill -TERM -- "-$CHILD" 2>/dev/null || true
        sleep 0.2
        kill -KILL -- "-$CHILD" 2>/dev/null || true
        wait "$CHILD" 2>/dev/null || true
    fi
    # nginx was started by setsid, so master and worker share a process
    # group of their own: TERM it (a clean fast shutdown), then KILL what is
    # left, so no orphaned worker keeps the port.
    if [[ -n $NGINX_PID ]]; then
        kill -TERM -- "-$NGINX_PID" 2>/dev/null || kill -TERM "$NGINX_PID" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do kill -0 -- "-$NGINX_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$NGINX_PID" 2>/dev/null || true
        wait "$NGINX_PID" 2>/dev/null || true
    fi
    if [[ -n $STALL_PID ]]; then
        kill -TERM "$STALL_PID" 2>/dev/null || true
        wait "$STALL_PID" 2>/dev/null || true
    fi
    rm -rf -- "$WORK"
    # Written-back inode tables let ext4 forget the freed inodes sooner (see
    # new_outdir), which spares whatever creates files here next.
    timeout 60 sync || true
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------ nginx

start_nginx() {  # port
    local ng=$WORK/nginx i token
    cat >"$ng/nginx.conf" <<EOF
# One worker: with 2 cores the client under test needs the other one.
worker_processes 1;
daemon off;
pid $ng/nginx.pid;
error_log $ng/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    # Never make a client reconnect: connection reuse is part of the test.
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    gzip off;
    types { }
    default_type application/octet-stream;
    client_body_temp_path $ng/tmp;
    proxy_temp_path $ng/tmp;
    fastcgi_temp_path $ng/tmp;
    uwsgi_temp_path $ng/tmp;
    scgi_temp_path $ng/tmp;
    server {
        listen 127.0.0.1:$1;
        root $WORK/data;
        # Each connection capped, as many download servers do; ranges are
        # served (nginx's default), so several connections add up.
        location /split/ { limit_rate $SPLIT_RATE; }
    }
}
EOF
    # A random token served back proves the port answers with *our* nginx.
    token=$RANDOM$RANDOM$RANDOM
    echo "$token" >"$WORK/data/ready.txt"
    # -e: otherwise nginx opens the system error log before reading our
    # config. setsid: its own process group, for cleanup.
    setsid nginx -p "$ng/" -e "$ng/error.log" -c "$ng/nginx.conf" </dev/null >>"$ng/stdout.log" 2>&1 &
    NGINX_PID=$!
    for ((i = 0; i < 100; i++)); do
        kill -0 "$NGINX_PID" 2>/dev/null || break
        if [[ $(curl -s --max-time 1 "http://127.0.0.1:$1/ready.txt" 2>/dev/null) == "$token" ]]; then
            return 0
        fi
        sleep 0.1
    done
    kill -KILL -- "-$NGINX_PID" 2>/dev/null || true
    wait "$NGINX_PID" 2>/dev/null || true
    NGINX_PID=""
    return 1
}

mkdir -p "$WORK/data"
for attempt in 1 2 3; do
    PORT=$(python3 "$HERE/compare.py" freeport)
    start_nginx "$PORT" && break
    log "nginx did not start on port $PORT: $(tail -n 1 "$WORK/nginx/error.log" 2>/dev/null)"
    ((attempt < 3)) || die "giving up on nginx"
done
BASE=http://127.0.0.1:$PORT
log "nginx (pid $NGINX_PID) serving $BASE from $WORK"

# The mirrors scenario's first source: a listener that takes the request
# and never answers (a Python process of ours, stopped by cleanup).
STALL_BASE=""
if [[ ,${SCENARIOS[*]}, == *mirrors* ]]; then
    python3 "$HERE/compare.py" stall "$WORK/stall.port" </dev/null >"$WORK/stall.log" 2>&1 &
    STALL_PID=$!
    for ((i = 0; i < 100; i++)); do [[ -s $WORK/stall.port ]] && break; sleep 0.1; done
    [[ -s $WORK/stall.port ]] || die "the stalling listener did not start: $(tail -n 1 "$WORK/stall.log")"
    STALL_BASE=http://127.0.0.1:$(cat "$WORK/stall.port")
    log "stalling source (pid $STALL_PID) at $STALL_BASE"
fi

log "generating test data ..."
python3 "$HERE/compare.py" gen "$WORK" "$BASE" "$QUICK" "$(IFS=,; echo "${SCENARIOS[*]}")" "$STALL_BASE"
# Flush the fresh data now, or the kernel writes it back during the first
# timed runs. Bounded like everything else.
timeout 300 sync || log "warning: sync took over 300 s"

# Tools must not pick up the user's config files (~/.curlrc, ~/.wget2rc,
# ~/.aria2/aria2.conf) or proxies. wget2 also keeps files in TMPDIR.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY \
      no_proxy NO_PROXY CURL_HOME WGETRC
export HOME=$WORK/home TMPDIR=$WORK/tmp XDG_CONFIG_HOME=$WORK/home/.config \
       XDG_DATA_HOME=$WORK/home/.local/share XDG_CACHE_HOME=$WORK/home/.cache

# ---------------------------------------------------------------- running

# tool_cmd TOOL SCENARIO OUT: the command a user would type, into CMD.
# fetchq-split8 and fetchq-race0.2 are fetchq with the flag in the name.
tool_cmd() {
    local list=$WORK/lists/$2.urls cfg
    case $1 in
        fetchq|fetchq-*)
            CMD=("$FETCHQ" "$list" -j "$JOBS" -d "$3" -q)
            [[ $2 != ratelimit ]] || CMD+=(--limit-rate "$RATE_SPEC")
            [[ $1 != fetchq-split8 ]] || CMD+=(--split "$SPLIT_CONNS")
            [[ $1 != fetchq-race0.2 ]] || CMD+=(--race-after 0.2) ;;
        curl)
            # curl has no output folder option for a list: a config file
            # with url/output pairs is how a user would do it. -sS is the
            # quiet mode the other tools get from -q; --fail so that an
            # HTTP error is an exit code, as for the others.
            cfg=$3.curlrc
            sed "s|@OUT@|$3|" "$WORK/lists/$2.curl.in" >"$cfg"
            CMD=(curl --parallel --parallel-max "$JOBS" -sS --fail -K "$cfg") ;;
        wget2)
            CMD=(wget2 --max-threads "$JOBS" -i "$list" -P "$3" -q)
            [[ $2 != split ]] || CMD+=(--chunk-size=8M) ;;
        aria2c)
            # --file-allocation=none: the default 'prealloc' writes every
            # file twice. --allow-overwrite: never rename around leftovers.
            [[ $2 != mirrors ]] || list=$WORK/lists/mirrors.aria2
            CMD=(aria2c -i "$list" -j "$JOBS" -d "$3" -q --file-allocation=none
                 --allow-overwrite=true)
            [[ $2 != split ]] || CMD+=(-x "$SPLIT_CONNS" -s "$SPLIT_CONNS" -k 1M)
            [[ $2 != mirrors ]] || CMD+=("${ARIA2_MIRROR_FLAGS[@]}") ;;
    esac
}

# run_timed LOG CMD...: sets RC and WALL (seconds, from EPOCHREALTIME: finer
# than time's 10 ms) and leaves '%e %U %S %M' as the last line of
# $WORK/time.txt. In the background + wait, so that Ctrl-C reaches our trap
# at once rather than after the tool.
run_timed() {
    local logf=$1 t0 t1; shift
    rm -f "$WORK/time.txt"
    t0=$EPOCHREALTIME
    timeout -k 5 "$RUN_LIMIT" /usr/bin/time -f '%e %U %S %M' -o "$WORK/time.txt" \
        "$@" >"$logf" 2>&1 </dev/null &
    CHILD=$!
    RC=0
    wait "$CHILD" || RC=$?
    t1=$EPOCHREALTIME
    CHILD=""
    WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')
}

# Free the space of the previous run's output without deleting it: delete
# thousands of files and ext4 makes the next run's creates slow (see the
# chattr above). Truncating frees the blocks (1.5 GiB per large round) and
# the dirty pages, so the next run does not pay the previous one's
# write-back; sync then flushes the rest. Everything goes at exit.
PREV_OUT=""
reset_previous() {
    if [[ -n $PREV_OUT && -d $PREV_OUT ]]; then
        find "$PREV_OUT" -type f -exec truncate -s 0 -- {} +
    fi
    timeout 120 sync || true
}

# Noise gauge. Other sessions on the same 2 cores (a cargo build, say) slow
# every tool, so each run records how much CPU the rest of the machine used
# meanwhile: all busy CPU time (/proc/stat) minus the tool's (time(1)) minus
# nginx's. The report shows it per tool; a large figure means rerun.
HZ=$(getconf CLK_TCK)
busy_ticks() {  # user+nice+system+steal of all CPUs; irq/softirq left out: loopback
    # TCP is softirq work on behalf of the tool, which rusage does not count
    awk '/^cpu / { print $2 + $3 + $4 + $9; exit }' /proc/stat
}
nginx_ticks() {  # utime+stime of nginx's master and worker
    local p sum=0 f
    for p in "$NGINX_PID" $(cat "/proc/$NGINX_PID/task/$NGINX_PID/children" 2>/dev/null); do
        f=$(cat "/proc/$p/stat" 2>/dev/null) || continue
        f=${f##*) }   # the fields after "(comm) ", comm may hold spaces
        read -r -a f <<<"$f"
        sum=$((sum + f[11] + f[12]))   # fields 14 and 15 of proc(5)
    done
    echo "$sum"
}

RUN_N=0
run_one() {  # scenario tool round
    local s=$1 t=$2 r=$3 out logf status detail times e u sy m v b0 b1 n0 n1 other
    reset_previous
    RUN_N=$((RUN_N + 1))
    out=$(new_outdir "$RUN_N-$s-$t-$r")
    PREV_OUT=$out
    tool_cmd "$t" "$s" "$out"
    logf=$WORK/logs/$s-$t-$r.log
    b0=$(busy_ticks) n0=$(nginx_ticks)
    run_timed "$logf" "${CMD[@]}"
    b1=$(busy_ticks) n1=$(nginx_ticks)
    rm -f "$out.curlrc"   # outside $out, so it is not an "unexpected file"
    times=$(tail -n 1 "$WORK/time.txt" 2>/dev/null || true)
    read -r e u sy m <<<"$times" || true
    [[ $e =~ ^[0-9.]+$ ]] || { e="" u="" sy="" m=""; }
    other=$(awk -v b=$((b1 - b0 - (n1 - n0))) -v hz="$HZ" -v u="${u:-0}" -v s="${sy:-0}" \
        'BEGIN { o = b / hz - u - s; printf "%.2f", o < 0 ? 0 : o }')
    if v=$(python3 "$HERE/compare.py" verify "$WORK" "$s" "$out" "$RUN_N"); then
        status=ok detail=$v
    else
        status=fail detail=$v
    fi
    if [[ $RC != 0 ]]; then
        status=fail
        if [[ $RC == 124 || $RC == 137 ]]; then
            detail="timed out after $RUN_LIMIT s; $detail"
        else
            # The first non-empty lines say what went wrong (clap, say, puts
            # the error first and usage hints after it).
            detail="exit $RC: $(grep -v '^[[:space:]]*$' "$logf" | head -n 2 | tr '\n\t|' '   ' | cut -c1-200); $detail"
        fi
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$t" "$r" "$RC" "$WALL" \
        "$e" "$u" "$sy" "$m" "$other" "$status" "${detail//$'\t'/ }" >>"$WORK/runs.tsv"
    log "$(printf '%-9s %-7s run %d: %7.3f s  %s' "$s" "$t" "$r" "$WALL" "$status")$([[ $status == ok ]] || echo " ($detail)")"
}

# Untimed warm-up: page every binary in (and make sure it runs at all).
# Two tiny files take well under a second; a tool that hangs on them would
# hang in every timed run too, so it is dropped instead of costing
# RUN_LIMIT seconds per run.
full_limit=$RUN_LIMIT
RUN_LIMIT=$((full_limit < 30 ? full_limit : 30))
kept=()
for t in "${TOOLS[@]}"; do
    out=$(new_outdir "warm-$t")
    tool_cmd "$t" warm "$out"
    run_timed "$WORK/logs/warm-$t.log" "${CMD[@]}"
    rm -f "$out.curlrc"
    if [[ $RC == 124 || $RC == 137 ]]; then
        log "warm-up: $t did not finish 2 tiny files in $RUN_LIMIT s: dropping it"
        NOTES+=("$t dropped: it did not download the 2 warm-up files within $RUN_LIMIT s")
        continue
    fi
    [[ $RC == 0 ]] || log "warm-up: $t exited with $RC: $(tail -n 1 "$WORK/logs/warm-$t.log")"
    kept+=("$t")
done
RUN_LIMIT=$full_limit
((${#kept[@]})) || die "no tool survived the warm-up"
TOOLS=("${kept[@]}")
[[ " ${TOOLS[*]} " == *" fetchq "* ]] || HAVE_FETCHQ=0

for s in "${SCENARIOS[@]}"; do
    if [[ $s == ratelimit ]]; then
        # Only fetchq promises an overall rate limit to check.
        if ((HAVE_FETCHQ)); then
            for ((r = 1; r <= RUNS; r++)); do run_one "$s" fetchq "$r"; done
        else
            log "ratelimit: skipped (it measures fetchq alone)"
        fi
        continue
    fi
    # The split and mirrors scenarios run fetchq twice (its default and the
    # flag a user would add); curl and wget2 have no way to use a second
    # source, so mirrors runs only fetchq and aria2c.
    stools=()
    for t in "${TOOLS[@]}"; do
        case $s/$t in
            split/fetchq) stools+=(fetchq-split8 fetchq) ;;
            mirrors/fetchq) stools+=(fetchq fetchq-race0.2) ;;
            mirrors/curl|mirrors/wget2) ;;
            *) stools+=("$t") ;;
        esac
    done
    # Round-robin: every tool once per round, and the order rotates each
    # round, so slow drift of the machine hits every tool alike and no tool
    # always runs first.
    n=${#stools[@]}
    for ((r = 1; r <= RUNS; r++)); do
        if [[ $s == split ]]; then
            # The limit: one connection's share of the file (1/SPLIT_CONNS
            # of it, as one range) fetched alone, once per round.
            read -r _ size _ _ < <(python3 "$HERE/compare.py" describe split "$QUICK")
            f=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["files"][0]["name"])' \
                "$WORK/manifests/split.json")
            lim=$(curl -sS --fail -r "0-$((size / SPLIT_CONNS - 1))" -o /dev/null \
                -w '%{time_total}' --max-time "$RUN_LIMIT" "$BASE/split/$f") || lim=""
            [[ -z $lim ]] || echo "$lim" >>"$WORK/split.limit"
            log "$(printf 'split     range 1/%d  run %d: %7.3f s (the limit)' "$SPLIT_CONNS" "$r" "${lim:-0}")"
        fi
        for ((i = 0; i < n; i++)); do
            run_one "$s" "${stools[$(((i + r - 1) % n))]}" "$r"
        done
    done
done

# ----------------------------------------------------------------- report

# First line of --version, without the build details after " (" or " - ".
version() { timeout 5 "$@" 2>&1 | head -n 1 | sed 's/ (.*//; s/ - .*//' | cut -c1-60 || true; }
{
    echo "# fetchq comparison benchmark"
    echo
    echo "- Date: $(date -u)"
    echo "- Machine: $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)), $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM, kernel $(uname -r)"
    echo "- Command: \`$CMDLINE\`"
    echo "- Mode: $([[ $QUICK == 1 ]] && echo quick || echo full), $RUNS run(s) per tool, interleaved round-robin; each run limited to $RUN_LIMIT s"
    echo "- Output written to: $(dirname "$WORK") ($(findmnt -n -o FSTYPE -T "$WORK" 2>/dev/null | tail -n 1 | grep . || echo "unknown file system")$([[ $TMPFS == 1 ]] && echo ", --tmpfs"))"
    echo "- Server: $(version nginx -v), 1 worker, 127.0.0.1 only"
    for t in "${TOOLS[@]}"; do
        case $t in
            fetchq) echo "- fetchq: \`$FETCHQ\` ($(version "$FETCHQ" --version))" ;;
            curl) echo "- curl: $(version curl --version)" ;;
            wget2) echo "- wget2: $(version wget2 --version)" ;;
            aria2c) echo "- aria2c: $(version aria2c --version)" ;;
        esac
    done
} >"$WORK/header.md"
printf '%s\n' "${NOTES[@]+"${NOTES[@]}"}" >"$WORK/notes.txt"

mkdir -p "$(dirname "$OUT_MD")"
python3 "$HERE/compare.py" report "$WORK" "$OUT_MD" "$WORK/header.md" \
    "$(IFS=,; echo "${TOOLS[*]}")" "$(IFS=,; echo "${SCENARIOS[*]}")" \
    "$QUICK" "$JOBS" "$RATE_SPEC" "$RATE_BYTES" "$WORK/notes.txt" \
    "$SPLIT_CONNS" "${ARIA2_MIRROR_FLAGS[*]}"
cp "$WORK/runs.tsv" "${OUT_MD%.md}.runs.tsv"
log "report saved to $OUT_MD (raw runs: ${OUT_MD%.md}.runs.tsv); done in ${SECONDS}s"
