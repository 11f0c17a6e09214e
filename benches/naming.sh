#!/usr/bin/env bash
# The namer's cost: `fetchq --dry-run` over generated lists, timed with
# GNU time (wall clock, CPU time and peak RSS of the whole process).
#
#   benches/naming.sh [--fetchq PATH] [--cases LIST]
#
# A case is KIND:COUNT. `same` is COUNT distinct URLs that all want the name
# x.bin (the collision numbering: x.bin, x-1.bin, ...); `distinct` is COUNT
# URLs with COUNT different names (the table of claimed names); `copies` is
# one URL COUNT times (duplicates, named once). Default:
# same:20000,same:1000000,distinct:1000000. The list is fed on stdin, never
# touches the network, and each run is cut off after NAMING_TIMEOUT seconds
# (default 300), so a quadratic namer shows as "timed out" instead of hanging.
#
# A script rather than a `[[bench]]` target: what counts is the real binary
# end to end (reading, naming, the pipeline, the printed plan) and the
# process's peak RSS, which a harness inside a test binary cannot isolate.
set -euo pipefail
export LC_ALL=C

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
FETCHQ=$HERE/../target/release/fetchq
CASES=same:20000,same:1000000,distinct:1000000
LIMIT=${NAMING_TIMEOUT:-300}
while (($#)); do
    case $1 in
        --fetchq) FETCHQ=${2:?--fetchq needs a path}; shift 2 ;;
        --cases) CASES=${2:?--cases needs a list}; shift 2 ;;
        -h|--help) sed -n '2,17s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "naming.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done
[[ -x $FETCHQ ]] || { echo "naming.sh: no fetchq at $FETCHQ (cargo build --release)" >&2; exit 2; }
[[ -x /usr/bin/time ]] || { echo "naming.sh: needs GNU time at /usr/bin/time (apt-get install time)" >&2; exit 2; }

WORK=$(mktemp -d)
trap 'rm -rf -- "$WORK"' EXIT

printf '%-18s %10s %10s %14s %10s\n' case seconds "CPU s" "peak RSS MiB" planned
for case in ${CASES//,/ }; do
    kind=${case%%:*} count=${case#*:}
    [[ $count =~ ^[1-9][0-9]*$ ]] || { echo "naming.sh: bad case $case" >&2; exit 2; }
    case $kind in
        same) awk -v n="$count" 'BEGIN { for (i = 0; i < n; i++) printf "http://127.0.0.1:9/%d/x.bin\n", i }' ;;
        distinct) awk -v n="$count" 'BEGIN { for (i = 0; i < n; i++) printf "http://127.0.0.1:9/x%d.bin\n", i }' ;;
        copies) awk -v n="$count" 'BEGIN { for (i = 0; i < n; i++) print "http://127.0.0.1:9/x.bin" }' ;;
        *) echo "naming.sh: unknown kind $kind (same, distinct or copies)" >&2; exit 2 ;;
    esac >"$WORK/list"
    status=0
    timeout "$LIMIT" /usr/bin/time -v -o "$WORK/time" \
        "$FETCHQ" --dry-run -d "$WORK/out" - <"$WORK/list" >"$WORK/plan" 2>/dev/null || status=$?
    if ((status == 124)); then
        printf '%-18s %10s %10s %14s %10s\n' "$case" ">$LIMIT" - "timed out" -
        continue
    fi
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, t, ":"); s = 0
        for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s }' "$WORK/time")
    cpu=$(awk -F': ' '/(User|System) time \(seconds\)/ { s += $2 } END { printf "%.2f", s }' "$WORK/time")
    rss=$(awk -F': ' '/Maximum resident set size/ { printf "%.1f", $2 / 1024 }' "$WORK/time")
    printf '%-18s %10s %10s %14s %10s\n' "$case" "$wall" "$cpu" "$rss" "$(wc -l <"$WORK/plan")"
done
