#!/usr/bin/env python3
"""ui_poll.py - what the web dashboard (/ui/) asks of valetd, every 2 s.

usage: ui_poll.py --port PORT [--interval 2] [--seconds N | --polls N] [--pid PID]
                  [--token T]

Theory of operation: the page's jobs view - its default, and its busiest -
polls /api/status, counts the jobs of each status and reads the newest 50
jobs; api/ui/api.js counts a list that has no total by asking for one or
two items where the list ended last time, galloping and bisecting when it
moved. This does the same requests in the same way (listCount and
listWindow below follow api.js line by line) on one keep-alive connection,
every --interval seconds, until --seconds have passed or SIGTERM comes, and
prints one JSON line: polls, requests, bytes read, and the time a poll took
(mean and max); with --pid, the CPU time that process (valetd) used per
poll meanwhile (/proc/PID/stat). bench.sh runs it beside the throughput run
(step 2d); `--interval 0 --polls 100 --pid PID` against an idle daemon
measures what one poll costs it (--cold: as if every list had moved).
Python 3 standard library only.
"""
import argparse
import http.client
import json
import os
import signal
import sys
import time
import urllib.parse

STATUSES = ["PENDING", "SCHEDULED", "IN_PROGRESS", "COMPLETED", "FAILED", "CANCELLED"]
PAGE = 50


class Poller:
    def __init__(self, port, token):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"Accept": "application/json"}
        if token:
            self.headers["Authorization"] = "Bearer " + token
        self.requests = 0
        self.bytes = 0
        self.ends = {}

    def get(self, path):
        for attempt in (0, 1):
            try:
                self.conn.request("GET", path, headers=self.headers)
                r = self.conn.getresponse()
                body = r.read()
                break
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                if attempt:
                    raise
        self.requests += 1
        self.bytes += len(body)
        if r.status not in (200, 503):
            raise RuntimeError("GET %s: %d %s" % (path, r.status, body[:200]))
        return json.loads(body)

    def page(self, base, status, offset, limit):
        q = {"offset": offset, "limit": limit}
        if status:
            q = {"status": status, **q}
        data = self.get(base + "?" + urllib.parse.urlencode(q))
        return data["pipelines" if base.endswith("pipelines") else "jobs"]

    def count(self, base, status):
        key = base + "|" + status
        last_end, moved = self.ends.get(key, (0, 1))

        def exists(i):
            return len(self.page(base, status, i, 1)) == 1

        def remember(end):
            self.ends[key] = (end, max(1, abs(end - last_end)))
            return end

        hi = None
        if last_end == 0:
            if not exists(0):
                return remember(0)
            lo = 0
        else:
            n = len(self.page(base, status, last_end - 1, 2))
            if n == 1:
                return remember(last_end)
            if n == 2:
                lo = last_end
            else:
                lo, hi = -1, last_end - 1
        if hi is None:
            step = max(1, moved)
            hi = lo + step
            while exists(hi):
                lo = hi
                step *= 2
                hi = lo + step
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if exists(mid):
                lo = mid
            else:
                hi = mid
        return remember(lo + 1)

    def window(self, base, status, page, size):
        total = self.count(base, status)
        end = max(total - page * size, 0)
        offset = max(end - size, 0)
        return self.page(base, status, offset, end - offset) if end > offset else []

    def poll(self):
        self.get("/api/status")
        for s in STATUSES:
            self.count("/api/jobs", s)
        self.window("/api/jobs", "", 0, PAGE)


def cpu_ms(pid):
    """utime + stime of pid, in ms (0 without a pid)."""
    if not pid:
        return 0.0
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000.0 / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--interval", type=float, default=2.0)
    ap.add_argument("--seconds", type=float, default=0, help="0: until SIGTERM")
    ap.add_argument("--polls", type=int, default=0, help="stop after this many polls")
    ap.add_argument("--pid", type=int, default=0, help="report this process's CPU per poll")
    ap.add_argument("--cold", action="store_true",
                    help="forget where the lists ended before each poll (the worst case)")
    ap.add_argument("--token", default="")
    args = ap.parse_args()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    p = Poller(args.port, args.token)
    p.get("/api/tasks")  # once, when the page opens
    times = []
    start = time.monotonic()
    cpu0 = cpu_ms(args.pid)
    while not stop and (not args.seconds or time.monotonic() - start < args.seconds) and \
            (not args.polls or len(times) < args.polls):
        t0 = time.monotonic()
        if args.cold:
            p.ends.clear()
        p.poll()
        times.append(time.monotonic() - t0)
        left = args.interval - (time.monotonic() - t0)
        while left > 0 and not stop:
            time.sleep(min(left, 0.1))
            left = args.interval - (time.monotonic() - t0)
    print(json.dumps({
        "polls": len(times), "requests": p.requests, "bytes": p.bytes,
        "poll_ms_mean": round(1000 * sum(times) / len(times), 2) if times else None,
        "poll_ms_max": round(1000 * max(times), 2) if times else None,
        "seconds": round(time.monotonic() - start, 1),
        "daemon_cpu_ms_per_poll": round((cpu_ms(args.pid) - cpu0) / len(times), 3)
        if args.pid and times else None}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
