#!/usr/bin/env python3
"""What hostile and heavy clients cost everyone else (make bench, step 5).

Against a running valetd (--port, its --pid):
  1. a normal client's GET /api/status latency over a keep-alive
     connection, alone, then with 2,000 other connections open - half of
     them silent, half stopped in the middle of a request head - from 8
     other loopback addresses; the daemon's RSS before and after;
  2. a 0.3 s-timeout job (task "sleeper") killed while another client reads
     a large result (task "big"): how late the kill was, from the job's own
     timestamps, and the normal client's worst latency during the read.
Prints one JSON object. Python 3 standard library only.
"""

import argparse
import http.client
import json
import resource
import socket
import subprocess
import threading
import time


def percentile(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))] if v else None


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def parse_ts(s):
    # 2026-12-04T18:01:57.123456Z -> seconds (fraction kept)
    base, _, frac = s.rstrip("Z").partition(".")
    t = time.mktime(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) - time.timezone
    return t + (float("0." + frac) if frac else 0.0)


class Client:
    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def req(self, method, path, body=None):
        headers = {"Content-Type": "application/json"} if body is not None else {}
        self.conn.request(method, path, body=json.dumps(body) if body is not None else None,
                          headers=headers)
        r = self.conn.getresponse()
        return r.status, r.read()


def latencies(port, n):
    c = Client(port)
    out = []
    for _ in range(n):
        t = time.monotonic()
        status, _ = c.req("GET", "/api/status")
        out.append((time.monotonic() - t) * 1000)
        assert status == 200, status
    return out


def idle_connections(port, pid, count, n):
    base = latencies(port, n)
    rss0 = rss_kb(pid)
    socks = []
    for i in range(count):
        s = socket.socket()
        s.bind(("127.0.0.%d" % (2 + i % 8), 0))
        s.connect(("127.0.0.1", port))
        if i % 2:
            s.sendall(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        socks.append(s)
    time.sleep(0.5)
    rss1 = rss_kb(pid)
    loaded = latencies(port, n)
    for s in socks:
        s.close()
    return {
        "connections": count,
        "alone_ms": {"p50": percentile(base, 50), "p99": percentile(base, 99)},
        "loaded_ms": {"p50": percentile(loaded, 50), "p99": percentile(loaded, 99)},
        "extra_ms": {"p50": percentile(loaded, 50) - percentile(base, 50),
                     "p99": percentile(loaded, 99) - percentile(base, 99)},
        "rss_kb_per_connection": (rss1 - rss0) / float(count),
    }


def wait_status(c, jid, statuses, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status, body = c.req("GET", "/api/jobs/" + jid)
        job = json.loads(body)
        if job["status"] in statuses:
            return job
        time.sleep(0.01)
    raise SystemExit("job %s did not reach %s" % (jid, statuses))


def big_result(port):
    c = Client(port)
    status, body = c.req("POST", "/api/jobs", {"name": "big", "task_name": "big",
                                               "timeout": 120})
    assert status == 202, body
    big = json.loads(body)["id"]
    wait_status(c, big, ("COMPLETED", "FAILED"))
    # The sleeper runs; the moment it is in progress, the result is read.
    status, body = c.req("POST", "/api/jobs", {"name": "sleeper", "task_name": "sleeper",
                                               "timeout": 0.3})
    assert status == 202, body
    sleeper = json.loads(body)["id"]
    wait_status(c, sleeper, ("IN_PROGRESS",))
    worst = []
    stop = threading.Event()

    def probe():
        while not stop.is_set():
            worst.extend(latencies(port, 1))

    t = threading.Thread(target=probe)
    t.start()
    # The reader is another process (curl), so that this one's probe is not
    # slowed by its reading.
    t0 = time.monotonic()
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download}",
                          "http://127.0.0.1:%d/api/jobs/%s/results" % (port, big)],
                         capture_output=True, text=True, check=True).stdout.split()
    read_s = time.monotonic() - t0
    job = wait_status(c, sleeper, ("FAILED", "COMPLETED"))
    stop.set()
    t.join()
    late = (parse_ts(job["completed_at"]) - parse_ts(job["started_at"]) - 0.3) * 1000
    return {"result_bytes": int(out[1]), "read_status": int(out[0]), "read_s": read_s,
            "kill_late_ms": late, "sleeper_status": job["status"],
            "status_worst_ms": max(worst) if worst else None}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--connections", type=int, default=2000)
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--big", action="store_true", help="also the large-result step")
    a = ap.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    report = {"idle": idle_connections(a.port, a.pid, a.connections, a.samples)}
    if a.big:
        report["big_result"] = big_result(a.port)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
