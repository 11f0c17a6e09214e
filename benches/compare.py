#!/usr/bin/env python3
"""Helper for benches/compare.sh: test data, output verification, report.

Standard library only, so the benchmark needs nothing beyond Debian's
python3. compare.sh owns the processes (nginx, the tools, timing); this file
owns everything that is easier to get right in Python than in bash:

  freeport                      print a free TCP port on 127.0.0.1
  gen WORK BASE_URL QUICK [SCENARIOS [STALL_URL]]
                                write data/, lists/ and manifests/ under WORK
  stall PORT_FILE               listen on 127.0.0.1, write the port to
                                PORT_FILE, take every request, never answer
  verify WORK SCENARIO OUT SEED check one run's output against the manifest
  report WORK OUT_MD ...        turn WORK/runs.tsv into the Markdown report

The scenario sizes live here (SCENARIOS) and nowhere else; compare.sh reads
them back with `describe`.
"""

import hashlib
import json
import os
import random
import socket
import statistics
import sys

MiB = 1024 * 1024

# name -> (file count, file size, quick file count, quick file size, jobs)
# Quick sizes keep every scenario's character (many tiny files, one big
# stream, the middle, a throttled transfer long enough to measure) while
# finishing the whole quick run in well under a minute.
SCENARIOS = {
    "small": dict(n=2000, size=4096, qn=500, qsize=4096,
                  title="many small files"),
    "large": dict(n=1, size=512 * MiB, qn=1, qsize=128 * MiB,
                  title="one large file"),
    "medium": dict(n=100, size=1 * MiB, qn=40, qsize=1 * MiB,
                   title="medium files"),
    # 8 files and -j 8: every file gets its own connection, so a limit that
    # is wrongly applied per connection instead of overall shows up as an
    # 8x overshoot rather than hiding in the noise.
    "ratelimit": dict(n=8, size=4 * MiB, qn=8, qsize=2 * MiB,
                      title="rate limit accuracy"),
    # One file from a location that caps each connection at SPLIT_RATE:
    # what a segmented download is for.
    "split": dict(n=1, size=64 * MiB, qn=1, qsize=32 * MiB,
                  title="one file, 4 MiB/s per connection"),
    # One file, two sources on one line; the first never answers.
    "mirrors": dict(n=1, size=32 * MiB, qn=1, qsize=8 * MiB,
                    title="two sources, the first stalls"),
}
# nginx's limit_rate on the split location (compare.sh writes the same).
SPLIT_RATE = 4 * MiB
# The warm-up list: two tiny files every tool fetches untimed before the
# first timed run, so no tool pays for paging its binary in from disk.
WARM = dict(n=2, size=4096)


def human_bytes(n):
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div and n % div == 0:
            return f"{n // div} {unit}"
    return f"{n} B"


def sizes(name, quick):
    s = SCENARIOS[name]
    return (s["qn"], s["qsize"]) if quick else (s["n"], s["size"])


def file_name(scenario, i, n):
    # Zero-padded so that sorted order is list order, and sha256 samples
    # "first" and "last" mean the same thing in every tool's output.
    width = max(3, len(str(n)))
    return f"{scenario[0]}{i:0{width}d}.bin"


# ---------------------------------------------------------------- freeport

def cmd_freeport():
    # Ask the kernel for an unused port. There is a short race between
    # closing this socket and nginx binding it; compare.sh retries nginx
    # with a new port if it loses.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])


# --------------------------------------------------------------------- gen

def write_random(path, size):
    # Random bytes, not zeros: nothing on the path (nginx has gzip off here,
    # but a tool could still ask for compression) can shrink them, and a
    # file that was written from the wrong offset cannot match its sha256 by
    # accident.
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            chunk = os.urandom(min(left, 4 * MiB))
            f.write(chunk)
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


def gen_one(work, base_url, name, n, size):
    data_dir = os.path.join(work, "data", name)
    os.makedirs(data_dir, exist_ok=True)
    files = []
    for i in range(1, n + 1):
        fname = file_name(name, i, n)
        digest = write_random(os.path.join(data_dir, fname), size)
        files.append({"name": fname, "size": size, "sha256": digest})
    urls = [f"{base_url}/{name}/{f['name']}" for f in files]
    lists = os.path.join(work, "lists")
    with open(os.path.join(lists, f"{name}.urls"), "w") as f:
        f.write("".join(u + "\n" for u in urls))
    # curl config template: compare.sh substitutes @OUT@ with each run's own
    # output folder (curl has no -d; `output` must be a path).
    with open(os.path.join(lists, f"{name}.curl.in"), "w") as f:
        for u, fl in zip(urls, files):
            f.write(f'url = "{u}"\noutput = "@OUT@/{fl["name"]}"\n')
    with open(os.path.join(work, "manifests", f"{name}.json"), "w") as f:
        json.dump({"scenario": name, "files": files}, f)


def gen_mirror_lists(work, base_url, stall_url):
    """The mirrors scenario's lists: both sources of the one file on one line,
    the stalling one first, in fetchq's and in aria2c's syntax."""
    with open(os.path.join(work, "manifests", "mirrors.json")) as f:
        fname = json.load(f)["files"][0]["name"]
    bad, good = f"{stall_url}/mirrors/{fname}", f"{base_url}/mirrors/{fname}"
    lists = os.path.join(work, "lists")
    with open(os.path.join(lists, "mirrors.urls"), "w") as f:
        f.write(f"{bad} {good} {fname}\n")
    # aria2c: TAB-separated URIs of one file, options on indented lines.
    with open(os.path.join(lists, "mirrors.aria2"), "w") as f:
        f.write(f"{bad}\t{good}\n  out={fname}\n")


def cmd_gen(work, base_url, quick, scenarios="", stall_url=""):
    quick = quick == "1"
    for sub in ("lists", "manifests"):
        os.makedirs(os.path.join(work, sub), exist_ok=True)
    gen_one(work, base_url, "warm", WARM["n"], WARM["size"])
    # Only the scenarios that run: the large file alone is 512 MiB.
    for name in [s for s in scenarios.split(",") if s] or SCENARIOS:
        n, size = sizes(name, quick)
        gen_one(work, base_url, name, n, size)
        if name == "mirrors":
            gen_mirror_lists(work, base_url, stall_url)


# ------------------------------------------------------------------- stall

def cmd_stall(port_file, lifetime=3600):
    """A server that accepts every connection, reads what the client sends
    and never answers: the first source of the mirrors scenario. Bounded by
    `lifetime` seconds in case compare.sh dies without killing it."""
    import selectors
    import time
    sel = selectors.DefaultSelector()
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind(("127.0.0.1", 0))
    lst.listen(128)
    sel.register(lst, selectors.EVENT_READ)
    tmp = port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{lst.getsockname()[1]}\n")
    os.rename(tmp, port_file)
    deadline = time.monotonic() + lifetime
    while time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1):
            if key.fileobj is lst:
                conn, _addr = lst.accept()
                conn.setblocking(False)
                sel.register(conn, selectors.EVENT_READ)
                continue
            try:
                data = key.fileobj.recv(65536)
            except OSError:
                data = b""
            if not data:   # the client gave up: forget it
                sel.unregister(key.fileobj)
                key.fileobj.close()
    return 0


def cmd_describe(name, quick):
    """One line for compare.sh: file count, file size, total bytes, title."""
    n, size = sizes(name, quick == "1")
    print(n, size, n * size, SCENARIOS[name]["title"].replace(" ", "_"))


# ------------------------------------------------------------------ verify

def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return h.hexdigest()
            h.update(b)


def cmd_verify(work, scenario, out, seed):
    """Print 'ok ...' or 'FAIL: reason'; exit 0 or 1.

    Checks the exact set of file names (a tool that writes an extra
    control/temp file, or nests output in a host folder, fails), every
    file's size, the total, and sha256 of the first, the last and three
    files drawn with this run's seed (so every run samples differently).
    """
    with open(os.path.join(work, "manifests", f"{scenario}.json")) as f:
        files = json.load(f)["files"]
    want = {fl["name"]: fl for fl in files}
    have = {}
    for root, _dirs, names in os.walk(out):
        for nm in names:
            p = os.path.join(root, nm)
            have[os.path.relpath(p, out)] = os.path.getsize(p)
    problems = []
    missing = sorted(set(want) - set(have))
    extra = sorted(set(have) - set(want))
    if missing:
        problems.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if extra:
        problems.append(f"{len(extra)} unexpected (e.g. {extra[0]})")
    wrong = [n for n in want if n in have and have[n] != want[n]["size"]]
    if wrong:
        n = wrong[0]
        problems.append(f"{len(wrong)} wrong size (e.g. {n}: {have[n]} != {want[n]['size']})")
    total = sum(have.values())
    expect_total = sum(fl["size"] for fl in files)
    if total != expect_total:
        problems.append(f"total {total} B != {expect_total} B")
    names = [fl["name"] for fl in files]
    sample = {names[0], names[-1]}
    sample.update(random.Random(seed).sample(names, min(3, len(names))))
    for n in sorted(sample):
        if n in have and have[n] == want[n]["size"]:
            if sha256_file(os.path.join(out, n)) != want[n]["sha256"]:
                problems.append(f"sha256 mismatch: {n}")
    if problems:
        print("FAIL: " + "; ".join(problems))
        return 1
    print(f"ok {len(have)} files, {total} B, sha256 of {len(sample)} ok")
    return 0


# ------------------------------------------------------------------ report

TOOL_LABEL = {
    "fetchq": "fetchq",
    "curl": "curl --parallel",
    "wget2": "wget2",
    "aria2c": "aria2c",
}


def read_runs(work):
    """runs.tsv rows written by compare.sh (one per timed run)."""
    cols = ["scenario", "tool", "round", "rc", "wall", "elapsed", "user",
            "sys", "maxrss_kb", "other_cpu", "status", "detail"]
    rows = []
    path = os.path.join(work, "runs.tsv")
    if not os.path.exists(path):
        return rows
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            parts += [""] * (len(cols) - len(parts))
            r = dict(zip(cols, parts))
            for k in ("wall", "user", "sys", "other_cpu"):
                r[k] = float(r[k]) if r[k] else None
            r["maxrss_kb"] = int(r["maxrss_kb"]) if r["maxrss_kb"] else None
            rows.append(r)
    return rows


def fmt(x, digits=3):
    return "–" if x is None else f"{x:.{digits}f}"


def ranked(runs, tools):
    """Each tool's stats (None if no run succeeded), and the tools fastest
    first, the failed ones last."""
    stats = {t: tool_stats([r for r in runs if r["tool"] == t]) for t in tools}
    order = sorted(tools, key=lambda t: (stats[t] is None,
                                         stats[t]["wall"] if stats[t] else 0))
    return stats, order


def tool_stats(runs):
    ok = [r for r in runs if r["status"] == "ok"]
    if not ok:
        return None
    walls = [r["wall"] for r in ok]
    cpus = [r["user"] + r["sys"] for r in ok if r["user"] is not None]
    rss = [r["maxrss_kb"] for r in ok if r["maxrss_kb"] is not None]
    return {
        "others": others_pct(ok),
        "ok": len(ok),
        "wall": statistics.median(walls),
        "wmin": min(walls),
        "wmax": max(walls),
        "cpu": statistics.median(cpus) if cpus else None,
        "rss": max(rss) / 1024 if rss else None,
    }


NCPU = os.cpu_count() or 1


def others_pct(runs):
    """Median share of the whole machine that other processes used."""
    v = [r["other_cpu"] / (r["wall"] * NCPU) * 100 for r in runs
         if r["other_cpu"] is not None and r["wall"]]
    return statistics.median(v) if v else None


def noise_lines(runs):
    v = others_pct([r for r in runs if r["status"] == "ok"])
    if v is None or v < 10:
        return []
    return ["", f"**Noisy:** other processes used a median {v:.0f}% of the machine "
            f"during these runs; differences may be theirs, not the tools'. "
            f"Rerun on a quiet machine."]


def failures_text(runs):
    bad = [r for r in runs if r["status"] != "ok"]
    return [f"- **failed**: {TOOL_LABEL.get(r['tool'], r['tool'])} run {r['round']}"
            f": {r['detail']}" for r in bad]


def scenario_table(name, sc, runs, tools, quick, jobs):
    n, size = sizes(name, quick)
    total = n * size
    what = f"{n:,} × {human_bytes(size)}, {jobs} jobs" if n > 1 else human_bytes(size)
    out = [f"## {name}: {sc['title']}, {what}", ""]
    stats, order = ranked(runs, tools)
    peers = [s["wall"] for t, s in stats.items() if s and t != "fetchq"]
    best = min(peers) if peers else None
    rate_head = "files/s" if name == "small" else "MiB/s"
    out.append(f"| tool | ok runs | wall s, median (min–max) | {rate_head} | CPU s | "
               "peak RSS MiB | × fastest peer | others' CPU % |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    for t in order:
        s = stats[t]
        tr = [r for r in runs if r["tool"] == t]
        label = TOOL_LABEL.get(t, t)
        if s is None:
            out.append(f"| {label} | 0/{len(tr)} | failed | – | – | – | – | – |")
            continue
        rate = n / s["wall"] if name == "small" else total / MiB / s["wall"]
        ratio = f"{s['wall'] / best:.2f}×" if best else "–"
        if best is not None and t != "fetchq" and s["wall"] == best:
            label += " *(fastest peer)*"
        out.append(f"| {label} | {s['ok']}/{len(tr)} | {s['wall']:.3f} "
                   f"({s['wmin']:.3f}–{s['wmax']:.3f}) | {rate:,.0f} | "
                   f"{fmt(s['cpu'], 2)} | {fmt(s['rss'], 1)} | {ratio} | "
                   f"{fmt(s['others'], 0)} |")
    fails = failures_text(runs)
    return out + noise_lines(runs) + ([""] + fails if fails else [])


def ratelimit_table(name, sc, runs, quick, jobs, rate_spec, target):
    n, size = sizes(name, quick)
    total = n * size
    out = [f"## {name}: fetchq --limit-rate {rate_spec}, {n} × {human_bytes(size)}, "
           f"{jobs} jobs", "",
           f"Target {target / MiB:.2f} MiB/s overall ({rate_spec} read as binary "
           f"units, as curl does); achieved = total bytes ÷ wall time of the "
           f"whole process. Required: within ±10%.", "",
           "| run | wall s | achieved MiB/s | target MiB/s | error % | within ±10% "
           "| others' CPU % |",
           "|---|---:|---:|---:|---:|---|---:|"]
    for r in runs:
        if r["status"] != "ok":
            out.append(f"| {r['round']} | {fmt(r['wall'])} | – | {target / MiB:.2f} | – "
                       f"| failed run | – |")
            continue
        rate = total / r["wall"]
        err = (rate - target) / target * 100
        out.append(f"| {r['round']} | {r['wall']:.3f} | {rate / MiB:.2f} | "
                   f"{target / MiB:.2f} | {err:+.1f} | {'yes' if abs(err) <= 10 else '**no**'} | "
                   f"{fmt(others_pct([r]), 0)} |")
    ok = [r for r in runs if r["status"] == "ok"]
    if len(ok) > 1:
        med = statistics.median(total / r["wall"] for r in ok)
        err = (med - target) / target * 100
        out.append(f"| median | – | {med / MiB:.2f} | {target / MiB:.2f} | {err:+.1f} | "
                   f"{'yes' if abs(err) <= 10 else '**no**'} | {fmt(others_pct(ok), 0)} |")
    fails = failures_text(runs)
    return out + ([""] + fails if fails else [])


def limit_time(work):
    """Median seconds of one split connection's share fetched alone."""
    path = os.path.join(work, "split.limit")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        v = [float(x) for x in f.read().split() if x]
    return statistics.median(v) if v else None


def split_table(name, sc, runs, tools, quick, jobs, conns, limit):
    n, size = sizes(name, quick)
    share = size // conns
    # limit_rate paces a response from its start, so nominally each of the
    # `conns` connections needs share / rate.
    nominal = share / SPLIT_RATE
    label = {"fetchq-split8": f"fetchq -j {jobs} --split {conns}",
             "fetchq": f"fetchq -j {jobs} (default --split 4)",
             "aria2c": f"aria2c -x {conns} -s {conns} -k 1M",
             "curl": "curl (one connection)",
             "wget2": f"wget2 --max-threads {jobs} --chunk-size=8M"}
    out = [f"## {name}: {sc['title']}, {human_bytes(size)}", "",
           f"nginx `limit_rate {SPLIT_RATE // MiB}m` per connection, ranges served. "
           f"Nominal limit for {conns} connections: {human_bytes(share)} each at "
           f"{SPLIT_RATE // MiB} MiB/s = {nominal:.3f} s. Measured limit: curl fetching "
           f"one {human_bytes(share)} range alone, median {fmt(limit)} s "
           f"(nginx sends the first part of each response at once).", "",
           "| tool | ok runs | wall s, median (min–max) | MiB/s | CPU s | peak RSS MiB "
           "| × aria2c | × measured limit | × nominal limit | others' CPU % |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    stats, order = ranked(runs, tools)
    ref = stats.get("aria2c")
    for t in order:
        st = stats[t]
        tr = [r for r in runs if r["tool"] == t]
        lb = label.get(t, t)
        if st is None:
            out.append(f"| {lb} | 0/{len(tr)} | failed | – | – | – | – | – | – | – |")
            continue
        w = st["wall"]
        x_ref = f"{w / ref['wall']:.2f}×" if ref else "–"
        x_lim = f"{w / limit:.2f}×" if limit else "–"
        out.append(f"| {lb} | {st['ok']}/{len(tr)} | {w:.3f} ({st['wmin']:.3f}–"
                   f"{st['wmax']:.3f}) | {size / MiB / w:,.1f} | {fmt(st['cpu'], 2)} | "
                   f"{fmt(st['rss'], 1)} | "
                   f"{x_ref} | {x_lim} | {w / nominal:.2f}× | "
                   f"{fmt(st['others'], 0)} |")
    fails = failures_text(runs)
    return out + noise_lines(runs) + ([""] + fails if fails else [])


def mirrors_table(name, sc, runs, tools, quick, aria2_flags):
    n, size = sizes(name, quick)
    label = {"fetchq": "fetchq (default --race-after 1)",
             "fetchq-race0.2": "fetchq --race-after 0.2",
             "aria2c": f"aria2c {aria2_flags}"}
    out = [f"## {name}: {sc['title']}, {human_bytes(size)}", "",
           "One list line, two sources: the first accepts the connection and never "
           "answers, the second is the unthrottled nginx. fetchq: `URL1 URL2 NAME`; "
           f"aria2c: the two URIs TAB-separated on one line, with `{aria2_flags}` "
           "(its defaults are --timeout=60 --max-tries=5). curl and wget2 have no way to name a "
           "second source of one file and do not run.", "",
           "| tool | ok runs | wall s, median (min–max) | CPU s | peak RSS MiB "
           "| others' CPU % |",
           "|---|---:|---:|---:|---:|---:|"]
    stats, order = ranked(runs, tools)
    for t in order:
        st = stats[t]
        tr = [r for r in runs if r["tool"] == t]
        lb = label.get(t, t)
        if st is None:
            out.append(f"| {lb} | 0/{len(tr)} | failed | – | – | – |")
            continue
        out.append(f"| {lb} | {st['ok']}/{len(tr)} | {st['wall']:.3f} "
                   f"({st['wmin']:.3f}–{st['wmax']:.3f}) | {fmt(st['cpu'], 2)} | "
                   f"{fmt(st['rss'], 1)} | {fmt(st['others'], 0)} |")
    fails = failures_text(runs)
    return out + noise_lines(runs) + ([""] + fails if fails else [])


def cmd_report(work, out_md, header_file, tools, scenarios, quick, jobs,
               rate_spec, rate_bytes, notes_file, split_conns="8", aria2_flags=""):
    quick = quick == "1"
    tools = [t for t in tools.split(",") if t]
    scenarios = [s for s in scenarios.split(",") if s]
    runs = read_runs(work)
    with open(header_file) as f:
        lines = f.read().rstrip("\n").split("\n")
    lines += ["", "Each cell is over the runs that passed verification (exact file names, "
              "every size, total bytes, sha256 of the first, the last and 3 random files). "
              "Wall: median, with min–max. CPU: median user+sys of the whole process "
              "tree. Peak RSS: the largest single process, highest over the runs. "
              "× fastest peer: median wall ÷ that of the fastest tool other than fetchq. "
              "Others' CPU %: median share of the machine's CPUs that processes other "
              "than the tool and nginx used during the runs (noise; ideally near 0).", ""]
    if os.path.exists(notes_file):
        with open(notes_file) as f:
            notes = [ln for ln in f.read().split("\n") if ln]
        if notes:
            lines += [f"- {ln}" for ln in notes] + [""]
    for name in scenarios:
        sc = SCENARIOS[name]
        srun = [r for r in runs if r["scenario"] == name]
        if name == "ratelimit":
            if not srun:
                lines += [f"## {name}: skipped (needs fetchq)", ""]
                continue
            lines += ratelimit_table(name, sc, srun, quick, jobs, rate_spec,
                                     int(rate_bytes))
        elif name in ("split", "mirrors"):
            present = []   # in the order they first ran
            for r in srun:
                if r["tool"] not in present:
                    present.append(r["tool"])
            if name == "split":
                lines += split_table(name, sc, srun, present, quick, jobs,
                                     int(split_conns), limit_time(work))
            else:
                lines += mirrors_table(name, sc, srun, present, quick, aria2_flags)
        else:
            present = [t for t in tools if any(r["tool"] == t for r in srun)]
            lines += scenario_table(name, sc, srun, present, quick, jobs)
        lines.append("")
    text = "\n".join(lines).rstrip("\n") + "\n"
    os.makedirs(os.path.dirname(os.path.abspath(out_md)), exist_ok=True)
    with open(out_md, "w") as f:
        f.write(text)
    sys.stdout.write(text)
    return 0


def main(argv):
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = argv[0], argv[1:]
    if cmd == "freeport":
        return cmd_freeport()
    if cmd == "gen":
        return cmd_gen(*args)
    if cmd == "describe":
        return cmd_describe(*args)
    if cmd == "scenarios":
        print(",".join(SCENARIOS))
        return 0
    if cmd == "stall":
        return cmd_stall(args[0])
    if cmd == "verify":
        return cmd_verify(args[0], args[1], args[2], int(args[3]))
    if cmd == "report":
        return cmd_report(*args)
    print(f"compare.py: unknown command {cmd}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]) or 0)
