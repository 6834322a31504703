#!/usr/bin/env python3
"""summary.py - the summary of a `make bench` run (tests/bench/bench.sh).

usage: summary.py --out DIR --repeat N [figures of the run ...] [--baseline DIR --build DIR]

Theory of operation: bench.sh leaves, per measure and round, a loadgen
report DIR/NAME.RUN.json (its "run" throughput, latencies, ...), or the
output of a loop, DIR/NAME.RUN.txt ("forkloop: N forks/s", "cmdloop: N
runs/s"), and beside them the daemon's CPU ticks (.cpu), RSS (.rss), the
scraper's and the dashboard poller's records. A rate is a measure's
throughput in a round; a ratio X/Y is the median over the rounds of X's
rate over Y's in the same round (both came close together, in both orders:
bench.sh runs every other round backwards), which the machine's drift
disturbs far less than the rates (the groups whose measures take turns in
chunks - the fork loops / empty / full, park_*, pg_mem / postgres / pg1m -
least). Each row of the table is a measure, its value, its target and PASS
or FAIL (nothing when not measured, "n/a" as the value); the last line
counts them: "targets: P pass, F fail, M not measured" (BENCH_STRICT reads
it). With --baseline, the A/B table instead
(see bench.sh). Python 3 standard library only.
"""
import argparse
import glob
import json
import os
import re

OUT = "."
ROUNDS = []


def load(name):
    try:
        with open(os.path.join(OUT, name + ".json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def get(report, *keys):
    for k in keys:
        if not isinstance(report, dict):
            return None
        report = report.get(k)
    return report if isinstance(report, (int, float)) and not isinstance(report, bool) else None


def median(values):
    values = sorted(v for v in values if v is not None)
    return values[(len(values) - 1) // 2] if values else None


def rate(name, run):
    """NAME's rate in round run: a loadgen report's throughput, or a loop's."""
    report = load("%s.%s" % (name, run))
    if report is not None:
        return get(report, "run", "throughput")
    try:
        with open(os.path.join(OUT, "%s.%s.txt" % (name, run))) as f:
            m = re.search(r"^\w+: ([0-9.]+) (?:forks|runs)/s", f.read(), re.M)
            return float(m.group(1)) if m else None
    except OSError:
        return None


def med_rate(name):
    return median(rate(name, r) for r in ROUNDS)


def ratio(a, b):
    """Median over the rounds of a's rate / b's rate in the same round."""
    out = []
    for r in ROUNDS:
        x, y = rate(a, r), rate(b, r)
        if x is not None and y:
            out.append(x / y)
    return median(out)


def median_report(name):
    """The report of the round with the median throughput (the lower middle)."""
    runs = [load("%s.%s" % (name, r)) for r in ROUNDS]
    runs = [x for x in runs if get(x, "run", "throughput") is not None]
    runs.sort(key=lambda x: get(x, "run", "throughput"))
    return runs[(len(runs) - 1) // 2] if runs else None


def cpu_per_job(name, run):
    """valetd's CPU time per job of a measure (its whole life), in microseconds."""
    try:
        with open(os.path.join(OUT, "%s.%s.cpu" % (name, run))) as f:
            ticks = float(f.read().split()[0])
        jobs = get(load("%s.%s" % (name, run)), "run", "completed")
        return ticks * 1e6 / os.sysconf("SC_CLK_TCK") / jobs if jobs else None
    except (OSError, ValueError, IndexError):
        return None


def auth_cpu_us(which, run, jobs):
    """The daemon's CPU time per submitted job of step auth, in microseconds."""
    try:
        with open(os.path.join(OUT, "auth_%s.%s.cpu" % (which, run))) as f:
            ticks, hz = (float(x) for x in f.read().split())
        return ticks / hz * 1e6 / jobs
    except (OSError, ValueError):
        return None


def auth_rate(which, run):
    return get(load("auth_%s.%s" % (which, run)), "park", "submit_rate")


def per_round(f):
    return median(f(r) for r in ROUNDS)


def pair(f):
    """Median over the rounds of f(run) = (x, y) as x / y."""
    out = []
    for r in ROUNDS:
        x, y = f(r)
        if x is not None and y:
            out.append(x / y)
    return median(out)


def job_ceiling(run):
    """What a seccomp-only job could reach in round run if only its filtered
    process and the queue engine cost anything: their CPU per job, each on
    the same cores, added (1 / (1 / filtered fork loop + 1 / --bench-noop))."""
    ff, noop = rate("forkloop_filter", run), rate("noop", run)
    return 1 / (1 / ff + 1 / noop) if ff and noop else None


def max_rss_mb(name, column):
    values = []
    for p in glob.glob(os.path.join(OUT, name + ".*.rss")) + glob.glob(
            os.path.join(OUT, name + ".rss")):
        try:
            with open(p) as f:
                values.append(float(f.read().split()[column]) / 1024)
        except (OSError, ValueError, IndexError):
            pass
    return max(values) if values else None


def fmt(v, spec="%.0f", unit=""):
    return "n/a" if v is None else (spec % v) + unit


def check(v, ok):
    return "" if v is None else ("PASS" if ok(v) else "FAIL")


def both(report, key):
    a, b = get(report, "run", key, "p50"), get(report, "run", key, "p99")
    return "%s / %s ms" % (fmt(a, "%.1f"), fmt(b, "%.1f"))


def row(label, value, target="", mark=""):
    return (label, value, target, mark)


def x_of(v, unit="x"):
    return fmt(v, "%.2f", unit)


def main_rows(a):
    rows = []
    fork1, forkn = med_rate("forkloop"), med_rate("forkloop_cores")
    rows += [
        row("bare fork loop, 1 process", fmt(fork1, "%.0f", " forks/s")),
        row("bare fork loop, %d at once (1 per core), summed" % a.cores,
            fmt(forkn, "%.0f", " forks/s")),
        row("  each child loading the strict filter", "%s (%s of bare)" % (
            fmt(med_rate("forkloop_filter"), "%.0f", " forks/s"),
            x_of(ratio("forkloop_filter", "forkloop_cores")))),
    ]
    empty, full = median_report("empty"), median_report("full")
    r_sf, r_ff, r_fs = ratio("empty", "forkloop_cores"), ratio("full", "forkloop_cores"), \
        ratio("full", "empty")
    rows += [
        row("seccomp-only C task jobs/s over HTTP", fmt(med_rate("empty"), "%.0f", " jobs/s"),
            ">= 3000", check(med_rate("empty"), lambda v: v >= 3000)),
        row("  / fork loop (one per core)", x_of(r_sf), ">= 0.5", check(r_sf, lambda v: v >= 0.5)),
        row("  / fork loop (1 process)", x_of(ratio("empty", "forkloop"))),
        row("  / fork loop loading the strict filter", x_of(ratio("empty", "forkloop_filter"))),
        row("  ceiling: that loop + the queue engine alone", "%s (%s of the fork loop)" % (
            fmt(per_round(job_ceiling), "%.0f", " jobs/s"),
            x_of(pair(lambda r: (job_ceiling(r), rate("forkloop_cores", r)))))),
        row("  submit-to-complete p50 / p99", both(empty, "latency_ms")),
        row("  HTTP submit latency p50 / p99", both(empty, "submit_latency_ms")),
        row("  503 retries / failed jobs", "%s / %s" % (fmt(get(empty, "run", "retries_503")),
                                                        fmt(get(empty, "run", "failed")))),
        row("full isolation C task jobs/s", fmt(med_rate("full"), "%.0f", " jobs/s"),
            ">= 1000", check(med_rate("full"), lambda v: v >= 1000)),
        row("  / fork loop (one per core)", x_of(r_ff), ">= 0.35",
            check(r_ff, lambda v: v >= 0.35)),
        row("  / seccomp only", x_of(r_fs), ">= 0.7", check(r_fs, lambda v: v >= 0.7)),
        row("  submit-to-complete p50 / p99", both(full, "latency_ms")),
    ]
    r_eb, r_eu = ratio("exec", "bwrap"), ratio("exec", "unshare")
    r_net = ratio("exec_net", "exec")
    rows += [
        row("exec task (/bin/echo {}), full isolation", fmt(med_rate("exec"), "%.0f", " jobs/s")),
        row("  bwrap --unshare-all ... true, 2 loops", fmt(med_rate("bwrap"), "%.0f", " runs/s")),
        row("  exec task / bwrap", x_of(r_eb), ">= 3x", check(r_eb, lambda v: v >= 3)),
        row("  unshare -p -f -n -m -i -u true, 2 loops",
            fmt(med_rate("unshare"), "%.0f", " runs/s")),
        row("  exec task / unshare", x_of(r_eu), ">= 2x", check(r_eu, lambda v: v >= 2)),
        row("  with exec+net's network (slirp4netns)", "%s (%s of exec)" % (
            fmt(med_rate("exec_net"), "%.0f", " jobs/s"), x_of(r_net))),
    ]
    pg = median_report("postgres")
    r_pg, r_1m = ratio("postgres", "pg_mem"), ratio("pg1m", "postgres")
    p99 = get(pg, "run", "submit_latency_ms", "p99")
    parked = None
    try:
        with open(os.path.join(OUT, "pg1m.park.txt")) as f:
            parked = f.read().strip()
    except OSError:
        pass
    rows += [
        row("PostgreSQL (durable) jobs/s", fmt(med_rate("postgres"), "%.0f", " jobs/s"),
            ">= 2000", check(med_rate("postgres"), lambda v: v >= 2000)),
        row("  / memory store, run beside it", "%s (memory: %s)" % (
            x_of(r_pg), fmt(med_rate("pg_mem"), "%.0f", " jobs/s")), ">= 0.85",
            check(r_pg, lambda v: v >= 0.85)),
        row("  HTTP submit latency p50 / p99", both(pg, "submit_latency_ms"), "p99 < 20 ms",
            check(p99, lambda v: v < 20)),
        row("  submit-to-complete p50 / p99", both(pg, "latency_ms")),
        row("  with %s jobs queued in the database" % format(a.pg_park, ","),
            fmt(med_rate("pg1m"), "%.0f", " jobs/s")),
        row("  / empty", x_of(r_1m), ">= 0.90 (10%)", check(r_1m, lambda v: v >= 0.9)),
        row("  (INSERT ... SELECT through psql)", parked or "n/a"),
    ]
    r_small, r_large = ratio("park_small", "park_empty"), ratio("park_large", "park_empty")
    rss_mb, children_mb = max_rss_mb("park_large", 0), max_rss_mb("park_large", 1)
    rows += [
        row("%s jobs parked in memory" % a.park_small, "%s (%s of empty beside it)" % (
            fmt(med_rate("park_small"), "%.0f", " jobs/s"), x_of(r_small)),
            ">= 0.90 (10%)", check(r_small, lambda v: v >= 0.9)),
        row("%s jobs parked in memory" % a.park_large, "%s (%s of empty beside it)" % (
            fmt(med_rate("park_large"), "%.0f", " jobs/s"), x_of(r_large)),
            ">= 0.95 (5%)", check(r_large, lambda v: v >= 0.95)),
        row("  submit-to-complete p50 / p99", both(median_report("park_large"), "latency_ms")),
        row("  daemon RSS", fmt(rss_mb, "%.1f", " MB"), "< 50 MB",
            check(rss_mb, lambda v: v < 50)),
        row("  its child processes (spawner)", fmt(children_mb, "%.1f", " MB")),
    ]
    noop, noop_pg = med_rate("noop"), med_rate("noop_pg")
    rows += [
        row("queue engine alone (--bench-noop), memory", fmt(noop, "%.0f", " jobs/s"),
            ">= 15000", check(noop, lambda v: v >= 15000)),
        row("  valetd CPU per job", fmt(per_round(lambda r: cpu_per_job("noop", r)), "%.1f",
                                        " us")),
        row("  PostgreSQL (durable)", fmt(noop_pg, "%.0f", " jobs/s")),
        row("  PostgreSQL: valetd CPU per job",
            fmt(per_round(lambda r: cpu_per_job("noop_pg", r)), "%.1f", " us")),
    ]
    r_ui = ratio("ui_poll", "empty")
    r_ui_cpu = pair(lambda r: (cpu_per_job("ui_poll", r), cpu_per_job("empty", r)))
    rows += [
        row("with the dashboard polling (2 s)", "%s (%s of without)" % (
            fmt(med_rate("ui_poll"), "%.0f", " jobs/s"), x_of(r_ui)), ">= 0.98",
            check(r_ui, lambda v: v >= 0.98)),
        row("  valetd CPU per job, polled / not", x_of(r_ui_cpu, ""), "<= 1.02",
            check(r_ui_cpu, lambda v: v <= 1.02)),
    ]
    rows += metrics_rows(a) + auth_rows(a) + kill_edge_rows(a)
    return rows


def metrics_rows(a):
    r = ratio("metrics_scraped", "metrics_base")
    scrapes, cpu_ms = [], []
    for p in glob.glob(os.path.join(OUT, "metrics_scraped.*.scrapes")):
        with open(p) as f:
            scrapes += [tuple(float(x) for x in line.split()) for line in f
                        if len(line.split()) == 2]
    for p in glob.glob(os.path.join(OUT, "metrics_scraped.*.scrape_cpu")):
        with open(p) as f:
            words = f.read().split()
        if len(words) == 2:
            cpu_ms.append(float(words[0]))
    scrape_cpu = median(cpu_ms)
    return [
        row("%s tasks, /metrics unscraped" % a.metrics_tasks,
            fmt(med_rate("metrics_base"), "%.0f", " jobs/s")),
        row("  scraped once a second", "%s (%s of unscraped)" % (
            fmt(med_rate("metrics_scraped"), "%.0f", " jobs/s"), x_of(r)), ">= 0.98",
            check(r, lambda v: v >= 0.98)),
        row("  a scrape: time, size (medians of %d)" % len(scrapes), "%s, %s" % (
            fmt(median([s[0] * 1000 for s in scrapes]), "%.1f", " ms"),
            fmt(median([s[1] / 1024 for s in scrapes]), "%.0f", " kB"))),
        row("  valetd's CPU per scrape (2000 in a row)", "%s (%s of a CPU at 1/s)" % (
            fmt(scrape_cpu, "%.3f", " ms"),
            fmt(scrape_cpu and scrape_cpu / 10, "%.3f", "%")), "< 2%",
            check(scrape_cpu, lambda v: v < 20)),
    ]


def auth_rows(a):
    r = pair(lambda run: (auth_rate("on", run), auth_rate("off", run)))
    c = pair(lambda run: (auth_cpu_us("on", run, a.auth_jobs), auth_cpu_us("off", run, a.auth_jobs)))
    return [
        row("API keys: %s submits (parked), off" % a.auth_jobs,
            "%s, %s us CPU each" % (
                fmt(per_round(lambda run: auth_rate("off", run)), "%.0f", "/s"),
                fmt(per_round(lambda run: auth_cpu_us("off", run, a.auth_jobs)), "%.1f"))),
        row("  on / off, submit rate", x_of(r, ""), ">= 0.95", check(r, lambda v: v >= 0.95)),
        row("  on / off, valetd CPU per submit", x_of(c, ""), "<= 1.05",
            check(c, lambda v: v <= 1.05)),
    ]


def kill_edge_rows(a):
    killr, edge = load("kill"), load("edge")
    k50, k99 = get(killr, "kill", "kill_ms", "p50"), get(killr, "kill", "kill_ms", "p99")
    e50, e99 = get(edge, "idle", "extra_ms", "p50"), get(edge, "idle", "extra_ms", "p99")
    ekill = get(edge, "big_result", "kill_late_ms")
    emax = None if e50 is None or e99 is None else max(e50, e99)
    return [
        row("kill latency p50 / p99 (%s jobs)" % a.kill, "%s / %s ms" % (
            fmt(k50, "%.2f"), fmt(k99, "%.2f")), "p99 < 10 ms", check(k99, lambda v: v < 10)),
        row("2,000 idle/half-sent connections:", ""),
        row("  a client's extra latency p50 / p99", "%s / %s ms" % (
            fmt(e50, "%.2f"), fmt(e99, "%.2f")), "< 10 ms", check(emax, lambda v: v < 10)),
        row("  daemon memory per connection",
            fmt(get(edge, "idle", "rss_kb_per_connection"), "%.1f", " kB")),
        row("100 MB result read (%s s):" % fmt(get(edge, "big_result", "read_s"), "%.2f"), ""),
        row("  a 0.3 s job's kill, late by", fmt(ekill, "%.1f", " ms"), "< 10 ms",
            check(ekill, lambda v: v < 10)),
    ]


def print_table(rows, header):
    print(header)
    print()
    print("%-48s %-34s %-14s %s" % ("measure", "value", "target", ""))
    print("-" * 100)
    for r in rows:
        print(("%-48s %-34s %-14s %s" % r).rstrip())
    marks = [r[3] for r in rows if r[3]]
    missing = sum(1 for r in rows if r[2] and not r[3])
    print()
    print("targets: %d pass, %d fail, %d not measured"
          % (marks.count("PASS"), marks.count("FAIL"), missing))


def per_round_lines():
    """Each round's rates, for the record (the ratios above are their medians)."""
    names = ["forkloop", "forkloop_cores", "forkloop_filter", "empty", "full", "exec", "bwrap", "unshare",
             "pg_mem", "postgres", "pg1m", "park_large", "park_empty", "park_small", "noop",
             "noop_pg"]
    names = [n for n in names if any(rate(n, r) is not None for r in ROUNDS)]
    if not names:
        return
    print()
    print("per round: " + ", ".join(names))
    for r in ROUNDS:
        print("  round %s: %s" % (r, ", ".join(fmt(rate(n, r)) for n in names)))


def ab_summary(a):
    forks = {r: rate("forkloop_cores", r) for r in ROUNDS}
    steps = [("empty", "seccomp only"), ("full", "full isolation")]
    rates = {(b, s, r): rate("%s.%s" % (b, s), r) for b in "AB" for s, _ in steps for r in ROUNDS}

    def div(x, y):
        return x / y if x is not None and y else None

    print("valet A/B benchmark: A = %s (baseline), B = %s (this build)" % (a.baseline, a.build))
    print("%s jobs per run, %s connections, workers=%s, %d CPUs, %s round(s): the fork loops,"
          % (a.jobs, a.conns, a.workers, a.cores, a.repeat))
    print("then A.empty B.empty A.full B.full (backwards in even rounds), each on a fresh daemon")
    print()
    print("%-6s %-15s %-16s %-20s %-20s %s" % ("round", "step", "fork loop/core",
                                              "A jobs/s (% fork)", "B jobs/s (% fork)", "B/A"))
    print("-" * 86)
    for r in ROUNDS:
        for i, (s, label) in enumerate(steps):
            x, y, f = rates[("A", s, r)], rates[("B", s, r)], forks[r]

            def cell(v):
                return "%s (%s)" % (fmt(v), fmt(div(v, f) and div(v, f) * 100, "%.1f", "%"))
            print(("%-6s %-15s %-16s %-20s %-20s %s" % (
                r if i == 0 else "", label, fmt(f, "%.0f", " forks/s") if i == 0 else "",
                cell(x), cell(y), fmt(div(y, x), "%.3f"))).rstrip())
    print()
    rows = [row("fork loops, one per core (median)", fmt(median(forks.values()), "%.0f",
                                                          " forks/s"))]
    for s, label in steps:
        pct = {b: median(div(rates[(b, s, r)], forks[r]) for r in ROUNDS) for b in "AB"}
        ba = median(div(rates[("B", s, r)], rates[("A", s, r)]) for r in ROUNDS)
        rows += [
            row("%s: jobs/s, median A / B" % label, "%s / %s" % (
                fmt(median(rates[("A", s, r)] for r in ROUNDS)),
                fmt(median(rates[("B", s, r)] for r in ROUNDS)))),
            row("  / fork loop, median A / B", "%s / %s" % (x_of(pct["A"], ""),
                                                             x_of(pct["B"], ""))),
            row("  B/A, median of the rounds", fmt(ba, "%.3f"), ">= 0.95",
                check(ba, lambda v: v >= 0.95)),
        ]
    try:
        with open(os.path.join(OUT, "B.park_large.rss")) as f:
            rss = [float(v) / 1024 for v in f.read().split()]
    except (OSError, ValueError):
        rss = []
    killr = load("kill")
    k50, k99 = get(killr, "kill", "kill_ms", "p50"), get(killr, "kill", "kill_ms", "p99")
    rows += [
        row("B: daemon RSS, %s parked" % a.park_large, fmt(rss[0] if rss else None, "%.1f",
                                                           " MB"), "< 50 MB",
            check(rss[0] if rss else None, lambda v: v < 50)),
        row("  its child processes (spawner)", fmt(rss[1] if len(rss) > 1 else None, "%.1f",
                                                   " MB")),
        row("B: kill latency p50 / p99 (%s jobs)" % a.kill, "%s / %s ms" % (
            fmt(k50, "%.2f"), fmt(k99, "%.2f")), "p99 < 10 ms", check(k99, lambda v: v < 10)),
    ]
    print_table(rows, "summary")


def main():
    global OUT, ROUNDS
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--repeat", type=int, required=True)
    for name in ("jobs", "exec-jobs", "noop-jobs", "conns", "workers", "cores", "park-small", "park-large",
                 "pg-park", "kill", "metrics-tasks", "auth-jobs"):
        ap.add_argument("--" + name, type=int, default=0)
    ap.add_argument("--baseline")
    ap.add_argument("--build")
    a = ap.parse_args()
    OUT, ROUNDS = a.out, [str(r) for r in range(1, a.repeat + 1)]
    if a.baseline:
        ab_summary(a)
        return
    print_table(main_rows(a), "valet benchmark: %s jobs per run (exec: %s, --bench-noop: %s), %s "
                "connections, workers=%s, %d CPUs, %d round(s): medians of the per-round figures"
                % (a.jobs, a.exec_jobs, a.noop_jobs, a.conns, a.workers, a.cores, a.repeat))
    per_round_lines()


if __name__ == "__main__":
    main()
