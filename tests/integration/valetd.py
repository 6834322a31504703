"""Start the real valetd for integration tests and talk to it over HTTP.

Theory of operation: every test class gets its own daemon (DaemonTestCase
starts it in setUpClass and stops it in tearDownClass). Daemon writes a
temporary INI config - a plugin directory holding symlinks to
$BUILD/tasks/demo.so and $BUILD/tests/hostile.so, one [task.NAME] section
per script in tests/hostile/exec, and the per-class overrides - picks a free
loopback port, starts `$BUILD/valetd -c CONF -l 127.0.0.1:PORT` with stdout
and stderr going to a log file, and waits until GET /api/status answers.
Stopping sends SIGTERM and requires exit status 0 and a log free of
sanitizer reports.

HTTP goes through http.client with one keep-alive connection per thread.
Python 3 standard library only.

Stores: a daemon uses the memory store unless VALET_TEST_STORE=postgres is
in the environment (tests/run_tests.sh sets it for suites named
MODULE@postgres) or the test passes store="postgres". A PostgreSQL daemon
gets [storage] backend = postgres, database_url = $VALET_TEST_DATABASE_URL
(the throwaway server tests/pg_tmp.sh started), and a schema and node_id of
its own, so that daemons never see each other's jobs. To restart "the same"
daemon after killing it, start a new one on the same schema and node_id:
d.clone() (or Daemon(schema=..., node_id=...)). Daemon.sql() reads the
daemon's tables with psql; pg_restart() restarts the whole server.
"""

import atexit
import calendar
import csv
import io
import itertools
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD_ARG = os.environ.get("BUILD", "build")
BUILD = BUILD_ARG if os.path.isabs(BUILD_ARG) else os.path.join(REPO, BUILD_ARG)
VALETD = os.path.join(BUILD, "valetd")
EXEC_DIR = os.path.join(REPO, "tests", "hostile", "exec")
HOSTILE_EXEC = os.path.join(BUILD, "tests", "hostile_exec")
# The Makefile's asan target builds into build/asan.
ASAN = "/asan" in BUILD_ARG or os.environ.get("VALET_ASAN") == "1"

SECRET_ENV = "VALET_TEST_SECRET"

DEMO_TASKS = ["dummytask", "echoprev", "failtask", "sha256", "sleep"]
HOSTILE_TASKS = [
    "hostile_abort", "hostile_bigresult", "hostile_deadlock", "hostile_divzero",
    "hostile_environ", "hostile_execve", "hostile_exit3", "hostile_flood", "hostile_fork",
    "hostile_frame", "hostile_ignore_term", "hostile_io_uring", "hostile_killparent",
    "hostile_mallocbomb", "hostile_membomb", "hostile_memscan", "hostile_noresult",
    "hostile_open_shadow", "hostile_perf_event", "hostile_ptrace", "hostile_segv",
    "hostile_sigill", "hostile_sigstop", "hostile_sleep", "hostile_socket", "hostile_spin",
    "hostile_stack", "hostile_syscall", "hostile_tgkill", "hostile_thread", "hostile_unshare",
]
# name -> (script and arguments, task timeout or None). "{m}" is replaced by
# a marker unique to the daemon instance and task: a sleep length such as
# 100.123456789 that a test finds again with pgrep -f.
EXEC_TASKS = {
    "exec_ok": ("ok.sh", None),
    "exec_error": ("error.sh", None),
    "exec_exit3": ("exit3.sh", None),
    "exec_garbage": ("garbage.sh", None),
    "exec_nul": ("garbage.sh nul", None),
    "exec_leave_child": ("leave_child.sh {m}", None),
    "exec_orphan": ("leave_child.sh {m} setsid", None),
    "exec_flood": ("flood.sh", None),
    "exec_flood_stderr": ("flood_stderr.sh", None),
    "exec_spin": ("spin.sh", None),
    "exec_sleep": ("sleep.sh {m}", None),
    "exec_sleep_500ms": ("sleep.sh {m}", "500ms"),
    "exec_many_children": ("many_children.sh {m}", None),
    "exec_fds": ("fds.sh", None),
    "exec_env": ("env.sh", None),
    "exec_scratch": ("scratch.sh", None),
    "exec_leave_traces": ("traces.sh leave {m}", None),
    "exec_look_traces": ("traces.sh look", None),
}

FINAL = ("COMPLETED", "FAILED", "CANCELLED")
ERROR_KEYS = {"code", "error", "message"}
OUTCOME_KEYS = {"pid", "exit_code", "signal", "timed_out", "oom_killed", "seccomp_syscall",
                "cpu_ms", "wall_ms", "max_rss_kb", "memory_peak_kb"}
TIME_KEYS = ("run_at", "scheduled_at", "created_at", "started_at", "completed_at")

# RFC 3339, UTC, "Z", fraction trimmed of trailing zeros (never ".000" or ".").
STRICT_TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{0,8}[1-9])?Z$")
ANY_TS_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
                       r"(Z|[+-]\d{2}:\d{2})$")
UUID4_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error")
# What valetd logs when it catches itself in a bug (a status change the
# lifecycle refuses, ...): never expected.
BUG_MARKS = ("(a bug)",)

_live = set()
_live_lock = threading.Lock()

STORES = ("memory", "postgres")
PG_TMP = os.path.join(REPO, "tests", "pg_tmp.sh")
# psql prints SQL NULL as this, and sql() turns it into None.
_NULL = "\x01NULL\x01"
_schema_seq = itertools.count(1)
_run_tag = "%06x" % random.randrange(16 ** 6)


def parse_ts(s):
    """RFC 3339 text -> seconds since the epoch (float)."""
    m = ANY_TS_RE.match(s or "")
    if not m:
        raise ValueError("not an RFC 3339 timestamp: %r" % (s,))
    y, mo, d, h, mi, sec, frac, zone = m.groups()
    t = calendar.timegm((int(y), int(mo), int(d), int(h), int(mi), int(sec), 0, 0, 0))
    if frac:
        t += int(frac) / 10 ** len(frac)
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        t -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return t


def fmt_ts(t):
    """Seconds since the epoch -> RFC 3339 UTC with microseconds."""
    whole = int(t)
    us = int(round((t - whole) * 1e6))
    if us >= 1000000:
        whole, us = whole + 1, us - 1000000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + ".%06dZ" % us


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def pgrep(pattern):
    """PIDs whose command line matches pattern (an extended regex)."""
    r = subprocess.run(["pgrep", "-f", pattern], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True)
    return [int(x) for x in r.stdout.split()]


def marker_pattern(marker):
    return "^sleep " + re.escape(marker) + "$"


def test_store():
    """The store daemons use by default: VALET_TEST_STORE, else memory."""
    return os.environ.get("VALET_TEST_STORE") or "memory"


def database_url():
    """The test database's libpq URL; AssertionError when there is none."""
    url = os.environ.get("VALET_TEST_DATABASE_URL")
    if not url:
        raise AssertionError("VALET_TEST_DATABASE_URL is not set: run the tests with "
                             "tests/run_tests.sh (make test), which starts a server "
                             "with tests/pg_tmp.sh, or set it to a database to use")
    return url


def new_schema():
    """A schema name no other daemon uses: t_<pid>_<n>_<random>."""
    return "t_%d_%d_%s" % (os.getpid(), next(_schema_seq), _run_tag)


def _psql():
    path = shutil.which("psql")
    if path:
        return path
    try:
        bindir = subprocess.run(["pg_config", "--bindir"], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True).stdout.strip()
    except OSError:
        bindir = ""
    if bindir and os.access(os.path.join(bindir, "psql"), os.X_OK):
        return os.path.join(bindir, "psql")
    raise AssertionError("psql not found (install the PostgreSQL client)")


def sql(query, schema=None, timeout=30, **params):
    """Run query (one or more SQL statements) with psql on the test database
    and return the rows of the last result as lists of strings (None for
    NULL); [] for statements that return no rows. schema, if given, is the
    search_path. params become psql variables: sql("select * from jobs where
    id = :'id'", id=job_id) quotes them safely (:'x' a literal, :"x" an
    identifier). An SQL error raises AssertionError with psql's message."""
    cmd = [_psql(), "-X", "-q", "-A", "-t", "--csv", "-v", "ON_ERROR_STOP=1",
           "-P", "null=" + _NULL, "-d", database_url()]
    for k, v in params.items():
        cmd += ["-v", "%s=%s" % (k, v)]
    env = dict(os.environ)
    if schema:
        env["PGOPTIONS"] = "-c search_path=%s" % schema
    # Read from stdin (not -c) so that psql substitutes the variables.
    r = subprocess.run(cmd, input=query, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, env=env, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError("psql failed (status %d) on %r:\n%s"
                             % (r.returncode, query, r.stderr.strip()))
    rows = []
    for row in csv.reader(io.StringIO(r.stdout)):
        rows.append([None if v == _NULL else v for v in row])
    return rows


def pg_restart(down=0):
    """Restart the test PostgreSQL server (fast shutdown, same socket and
    port); returns once it accepts connections again. Connections that
    daemons hold are cut. down: seconds it stays stopped (an outage)."""
    pg_dir = os.environ.get("VALET_TEST_PG_DIR")
    if not pg_dir:
        raise AssertionError("VALET_TEST_PG_DIR is not set: pg_restart() needs the server "
                             "that tests/run_tests.sh starts with tests/pg_tmp.sh")
    cmd = [PG_TMP, "restart", pg_dir] + (["%g" % down] if down else [])
    r = subprocess.run(cmd, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=120)
    if r.returncode != 0:
        raise AssertionError("tests/pg_tmp.sh restart %s failed (status %d):\n%s"
                             % (pg_dir, r.returncode, r.stdout))


def pg_freeze(stop=True):
    """SIGSTOP (stop) or SIGCONT every process of the test PostgreSQL
    server (tests/pg_tmp.sh's, VALET_TEST_PG_DIR): a server that hangs with
    its connections open, as behind a network black hole. Thaw it in a
    finally: a frozen server stops every test that follows."""
    pg_dir = os.environ.get("VALET_TEST_PG_DIR")
    if not pg_dir:
        raise AssertionError("VALET_TEST_PG_DIR is not set: pg_freeze() needs the server "
                             "that tests/run_tests.sh starts with tests/pg_tmp.sh")
    with open(os.path.join(pg_dir, "data", "postmaster.pid")) as f:
        postmaster = int(f.readline())
    pids = [postmaster] + [pid for pid, row in proc_table().items() if row[0] == postmaster]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGSTOP if stop else signal.SIGCONT)
        except ProcessLookupError:
            pass


def proc_table():
    """{pid: (ppid, state, uid, comm)} of every process."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
            with open("/proc/%s/status" % name) as f:
                uid = int(re.search(r"^Uid:\s+(\d+)", f.read(), re.M).group(1))
        except (OSError, AttributeError):
            continue
        rest = stat[stat.rfind(")") + 2:].split()
        out[int(name)] = (int(rest[1]), rest[0], uid, stat[stat.find("(") + 1:stat.rfind(")")])
    return out


def spawner_of(d):
    """The pid of the daemon's spawner: its one child (job children are the
    spawner's, and look like it)."""
    kids = [pid for pid, v in proc_table().items() if v[0] == d.proc.pid]
    if len(kids) != 1:
        raise AssertionError("valetd %d has children %s, not one spawner" % (d.proc.pid, kids))
    return kids[0]


def below(table, root):
    """The pids below root in a proc_table() (not root itself)."""
    found, frontier = set(), [root]
    while frontier:
        p = frontier.pop()
        kids = [c for c, v in table.items() if v[0] == p and c not in found]
        found.update(kids)
        frontier.extend(kids)
    return found


def memory_holds(pid, needles, writable_only=True, skip_above=None):
    """Which of needles (bytes) occur in the memory of pid, read from
    outside through /proc/pid/mem (root) in pieces of 1 MiB: its writable
    mappings (heap, stack, data, anonymous: where a copy made at run time
    lives), or with writable_only=False every readable one but [vvar] and
    [vsyscall]. skip_above: mappings larger than that many bytes are left
    out (AddressSanitizer's shadow and reserves: terabytes of untouched
    address space)."""
    found = set()
    keep = max(len(n) for n in needles)
    with open("/proc/%d/maps" % pid) as maps, open("/proc/%d/mem" % pid, "rb", 0) as mem:
        for line in maps:
            m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+)", line)
            if (not m or "r" not in m.group(3) or (writable_only and "w" not in m.group(3))
                    or "[vvar" in line or "[vsyscall]" in line):
                continue
            lo, hi = int(m.group(1), 16), int(m.group(2), 16)
            if skip_above is not None and hi - lo > skip_above:
                continue
            tail, pos = b"", lo
            while pos < hi:
                try:
                    mem.seek(pos)
                    chunk = mem.read(min(1 << 20, hi - pos))
                except OSError:
                    break
                if not chunk:
                    break
                data = tail + chunk
                found.update(n for n in needles if n in data)
                tail, pos = data[-keep:], pos + len(chunk)
    return found


def descendants(pid):
    """{pid: (state, cmdline)} of every process below pid (not pid itself)."""
    table = proc_table()
    out = {}
    for p in below(table, pid):
        try:
            with open("/proc/%d/cmdline" % p, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        out[p] = (table[p][1], cmd)
    return out


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-cased names
        self.body = body
        self._json = None
        self._decoded = False

    @property
    def json(self):
        if not self._decoded:
            self._decoded = True
            try:
                self._json = json.loads(self.body) if self.body else None
            except ValueError:
                self._json = None
        return self._json

    def header(self, name):
        return self.headers.get(name.lower())

    def __repr__(self):
        return "<HTTP %d %r>" % (self.status, self.body[:500])


class Client:
    """Keep-alive HTTP client, one connection per thread."""

    def __init__(self, host, port, timeout=15):
        self.host = host
        self.port = port
        self.timeout = timeout
        self._local = threading.local()

    def _conn(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self._local.conn = conn
        return conn

    def close(self):
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def request(self, method, path, body=None, raw=None, headers=None):
        """body: a value sent as JSON; raw: bytes sent as they are."""
        data = raw
        if data is None and body is not None:
            data = json.dumps(body).encode()
        hdrs = dict(headers or {})
        if data is not None:
            hdrs.setdefault("Content-Type", "application/json")
        for attempt in (0, 1):
            reused = getattr(self._local, "conn", None) is not None
            conn = self._conn()
            try:
                conn.request(method, path, body=data, headers=hdrs)
                resp = conn.getresponse()
                payload = resp.read()
            except (http.client.RemoteDisconnected, http.client.CannotSendRequest,
                    ConnectionResetError, BrokenPipeError):
                # The server closed an idle keep-alive connection: retry once
                # on a fresh one.
                self.close()
                if attempt or not reused:
                    raise
                continue
            headers_out = {k.lower(): v for k, v in resp.getheaders()}
            if resp.will_close:
                self.close()
            return Response(resp.status, headers_out, payload)
        raise AssertionError("unreachable")

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def patch(self, path, body=None, **kw):
        return self.request("PATCH", path, body=body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def options(self, path, **kw):
        return self.request("OPTIONS", path, **kw)


class Daemon:
    """One valetd process with its own config, port and log."""

    def __init__(self, overrides=None, env=None, binary=None, store=None, schema=None,
                 node_id=None, user=None, tmp_parent=None, listen_host="127.0.0.1",
                 config_text=None, args=(), wrapper=()):
        """store: "memory" or "postgres" (default: test_store()). With
        postgres, schema and node_id default to new unique names; pass a
        killed daemon's to start on its data (see clone()). tmp_parent: where
        the daemon's temp dir (config, log, plugin links) goes (default:
        $TMPDIR or /tmp). config_text: the config file, as it is (instead of
        the one made of the defaults and overrides). args: more arguments
        for valetd; wrapper: a command that runs valetd (its argv follows),
        exec'ing it, so that the process started is valetd itself."""
        self.binary = binary or VALETD
        self.config_text = config_text
        self.args = list(args)
        self.wrapper = list(wrapper)
        self.user = user  # run valetd as this user (the test runs as root)
        self.listen_host = listen_host  # its address; the client uses 127.0.0.1
        self.overrides = overrides or {}
        self.extra_env = env or {}
        self.store = store or test_store()
        if self.store not in STORES:
            raise AssertionError("unknown store %r (VALET_TEST_STORE is one of %s)"
                                 % (self.store, ", ".join(STORES)))
        self.database_url = None
        self.schema = None
        self.node_id = None
        if self.store == "postgres":
            self.database_url = database_url()
            self.schema = schema or new_schema()
            if not re.match(r"^[a-z_][a-z0-9_]*$", self.schema):
                raise AssertionError("bad schema name %r" % (self.schema,))
            self.node_id = node_id or "node-" + self.schema.replace("_", "-")
        self.proc = None
        self.port = None
        self.tmp = tempfile.mkdtemp(prefix="valet-test-", dir=tmp_parent)
        self.log_path = os.path.join(self.tmp, "valetd.log")
        self.conf_path = os.path.join(self.tmp, "valetd.conf")
        self.markers = {}
        self.client = None
        self.secret = "s3cret-%d" % random.randrange(10 ** 9)
        # Unique sleep lengths per exec task (see EXEC_TASKS).
        for name, (cmd, _) in EXEC_TASKS.items():
            if "{m}" in cmd:
                base = "1000" if "sleep.sh" in cmd else "100"
                self.markers[name] = "%s.%09d" % (base, random.randrange(10 ** 9))

    # --- configuration ----------------------------------------------------
    def _plugin_dir(self):
        d = os.path.join(self.tmp, "plugins")
        os.makedirs(d, exist_ok=True)
        for src in (os.path.join(BUILD, "tasks", "demo.so"),
                    os.path.join(BUILD, "tests", "hostile.so")):
            dst = os.path.join(d, os.path.basename(src))
            if os.path.exists(src) and not os.path.lexists(dst):
                os.symlink(src, dst)
        return d

    def _sections(self):
        sections = {
            "server": {"max_body": "1M", "access_log": "false"},
            "queue": {"workers": "4", "capacity": "1000", "shutdown_grace": "2s"},
            "jobs": {"default_timeout": "10s"},
            "tasks": {"plugin_dir": self._plugin_dir()},
            "log": {"level": "info"},
        }
        if self.store == "postgres":
            sections["storage"] = {"backend": "postgres", "database_url": self.database_url,
                                   "schema": self.schema, "node_id": self.node_id}
        if ASAN:
            # ASan reserves terabytes of address space: an RLIMIT_AS would
            # make every allocation in a job child fail.
            sections["sandbox"] = {"memory_limit": "0"}
        for name, (cmd, timeout) in EXEC_TASKS.items():
            script, _, args = cmd.partition(" ")
            args = args.replace("{m}", self.markers.get(name, ""))
            sec = {"command": (os.path.join(EXEC_DIR, script) + " " + args).strip()}
            if timeout:
                sec["timeout"] = timeout
            sections["task." + name] = sec
        for sec, keys in self.overrides.items():
            target = sections.setdefault(sec, {})
            for k, v in keys.items():
                if v is None:
                    target.pop(k, None)
                else:
                    target[k] = str(v)
        return sections

    def write_config(self):
        if self.config_text is not None:
            with open(self.conf_path, "w") as f:
                f.write(self.config_text)
            return
        lines = ["# written by tests/integration/valetd.py"]
        for sec, keys in self._sections().items():
            lines.append("")
            lines.append("[%s]" % sec)
            for k, v in keys.items():
                lines.append("%s = %s" % (k, v))
        with open(self.conf_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    # --- life cycle -------------------------------------------------------
    def start(self, timeout=10.0):
        if not os.access(self.binary, os.X_OK):
            raise AssertionError("%s is not built" % self.binary)
        self.write_config()
        env = dict(os.environ)
        env[SECRET_ENV] = self.secret
        env.update(self.extra_env)
        for attempt in range(3):
            self.port = free_port()
            if self.user:
                os.chmod(self.tmp, 0o755)
                os.chmod(self.conf_path, 0o644)
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    self.wrapper + [self.binary, "-c", self.conf_path, "-l",
                                    "%s:%d" % (self.listen_host, self.port)] + self.args,
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, cwd=self.tmp,
                    user=self.user)
            with _live_lock:
                _live.add(self.proc)
            self.client = Client("127.0.0.1", self.port)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                probe = Client("127.0.0.1", self.port, timeout=1)
                try:
                    r = probe.get("/api/status")
                    # 401: it answers, and wants an API key for that too;
                    # 400 from a TLS port: it answers plain HTTP that way.
                    tls = "tls_cert" in self.overrides.get("server", {})
                    if r.status in (200, 401) or (tls and r.status == 400):
                        return self
                except OSError:
                    pass
                finally:
                    probe.close()
                time.sleep(0.01)
            if self.proc.poll() is None:
                self.kill()
                raise AssertionError("valetd did not answer /api/status within %.0fs\n%s"
                                     % (timeout, self.log_tail()))
            self._forget()
            if "in use" not in self.log_text() or attempt == 2:
                raise AssertionError("valetd exited with status %s at startup\n%s"
                                     % (self.proc.returncode, self.log_tail()))
        raise AssertionError("unreachable")

    def _forget(self):
        with _live_lock:
            _live.discard(self.proc)
        if self.client:
            self.client.close()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def terminate(self, timeout=None):
        """SIGTERM; returns (exit status, seconds until exit)."""
        if timeout is None:
            timeout = 15.0
        if self.client:
            self.client.close()
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("valetd did not exit within %.1fs of SIGTERM\n%s"
                                 % (timeout, self.log_tail()))
        elapsed = time.monotonic() - t0
        self._forget()
        return rc, elapsed

    def stop(self):
        """SIGTERM; require exit status 0 and a clean log. Removes the temp dir."""
        if self.proc is None:
            return
        if self.proc.poll() is not None:
            rc, elapsed = self.proc.returncode, 0.0
            self._forget()
            raise AssertionError("valetd died during the test (status %d)\n%s"
                                 % (rc, self.log_tail()))
        rc, elapsed = self.terminate()
        self.check_exit(rc)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def check_exit(self, rc):
        if rc != 0:
            raise AssertionError("valetd exited with status %d\n%s" % (rc, self.log_tail()))
        text = self.log_text()
        for mark in SANITIZER_MARKS + BUG_MARKS:
            if mark in text:
                raise AssertionError("valetd log mentions %r\n%s" % (mark, self.log_tail(200)))

    def kill(self, sig=signal.SIGKILL, timeout=15.0):
        """Send sig (default SIGKILL) and wait for the exit; a daemon still
        there after timeout seconds gets SIGKILL. Returns the exit status
        (negative: killed by that signal), None if it was not running. The
        temp dir stays (cleanup() removes it)."""
        rc = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                rc = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait()
        self._forget()
        return rc

    def clone(self, overrides=None, env=None, **kw):
        """A new (not started) Daemon on the same store, schema and node_id,
        with the same overrides and env unless given: to start "the same"
        daemon again after kill() or stop(). kw go to Daemon()."""
        kw.setdefault("binary", self.binary)
        kw.setdefault("store", self.store)
        kw.setdefault("schema", self.schema)
        kw.setdefault("node_id", self.node_id)
        kw.setdefault("tmp_parent", os.path.dirname(self.tmp))
        kw.setdefault("listen_host", self.listen_host)
        return Daemon(self.overrides if overrides is None else overrides,
                      self.extra_env if env is None else env, **kw)

    def sql(self, query, **params):
        """Run SQL on the test database with search_path = this daemon's
        schema; returns rows as lists of strings (module-level sql())."""
        if self.store != "postgres":
            raise AssertionError("Daemon.sql() needs a daemon on the postgres store")
        return sql(query, schema=self.schema, **params)

    def cleanup(self):
        """Kill (if running) and remove the temp dir."""
        self.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log_tail(self, lines=60):
        text = self.log_text().splitlines()
        return "--- valetd log (%s), last %d lines ---\n%s\n--- end of log ---" % (
            self.log_path, lines, "\n".join(text[-lines:]))

    # --- HTTP helpers -----------------------------------------------------
    def get(self, path, **kw):
        return self.client.get(path, **kw)

    def post(self, path, body=None, **kw):
        return self.client.post(path, body, **kw)

    def patch(self, path, body=None, **kw):
        return self.client.patch(path, body, **kw)

    def delete(self, path, **kw):
        return self.client.delete(path, **kw)

    def options(self, path, **kw):
        return self.client.options(path, **kw)

    def get_json(self, path, expect=200):
        r = self.get(path)
        if r.status != expect:
            raise AssertionError("GET %s: expected %d, got %r" % (path, expect, r))
        return r.json

    def submit(self, task_name, params=None, timeout=None, name=None, **extra):
        """POST /api/jobs; requires 202; returns the job object."""
        body = {"name": name or "test-" + task_name, "task_name": task_name}
        if params is not None:
            body["task_params"] = params
        if timeout is not None:
            body["timeout"] = timeout
        body.update(extra)
        r = self.post("/api/jobs", body)
        if r.status != 202:
            raise AssertionError("POST /api/jobs %s: expected 202, got %r" % (body, r))
        return r.json

    def submit_pipeline(self, jobs, name="test-pipeline", **extra):
        body = {"name": name, "jobs": jobs}
        body.update(extra)
        r = self.post("/api/pipelines", body)
        if r.status != 202:
            raise AssertionError("POST /api/pipelines %s: expected 202, got %r" % (body, r))
        return r.json

    def job(self, job_id):
        return self.get_json("/api/jobs/" + job_id)

    def pipeline(self, pipeline_id):
        return self.get_json("/api/pipelines/" + pipeline_id)

    def result(self, job_id):
        return self.get_json("/api/jobs/%s/results" % job_id)

    def wait_for(self, job_id, statuses=FINAL, timeout=10.0, kind="jobs"):
        """Poll GET /api/<kind>/<id> every 10 ms until its status is one of
        statuses; returns the object."""
        if isinstance(statuses, str):
            statuses = (statuses,)
        deadline = time.monotonic() + timeout
        obj = None
        while True:
            r = self.get("/api/%s/%s" % (kind, job_id))
            if r.status != 200:
                raise AssertionError("GET /api/%s/%s: %r" % (kind, job_id, r))
            obj = r.json
            if obj["status"] in statuses:
                return obj
            if time.monotonic() > deadline:
                raise AssertionError("%s %s did not reach %s within %.1fs; last: %s"
                                     % (kind, job_id, "/".join(statuses), timeout, obj))
            time.sleep(0.01)

    def wait_pipeline(self, pipeline_id, statuses=FINAL, timeout=10.0):
        return self.wait_for(pipeline_id, statuses, timeout, kind="pipelines")

    def wait_all(self, job_ids, statuses=FINAL, timeout=10.0, check_status=True):
        """Wait for several jobs at once; optionally require GET /api/status
        to answer 200 on every round. Returns {id: job}."""
        if isinstance(statuses, str):
            statuses = (statuses,)
        deadline = time.monotonic() + timeout
        done = {}
        while True:
            if check_status:
                r = self.get("/api/status")
                if r.status != 200:
                    raise AssertionError("GET /api/status answered %r" % r)
            for jid in job_ids:
                if jid in done:
                    continue
                job = self.job(jid)
                if job["status"] in statuses:
                    done[jid] = job
            if len(done) == len(job_ids):
                return done
            if time.monotonic() > deadline:
                left = {j: self.job(j) for j in job_ids if j not in done}
                raise AssertionError("jobs did not reach %s within %.1fs: %s"
                                     % ("/".join(statuses), timeout, left))
            time.sleep(0.01)

    def task_names(self):
        return self.get_json("/api/tasks")["tasks"]


def kill_all():
    """Kill every daemon this process started (watchdog and exit)."""
    with _live_lock:
        procs = list(_live)
        _live.clear()
    for p in procs:
        if p.poll() is None:
            p.kill()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass


atexit.register(kill_all)


def scratch_dir(prefix, parent=None):
    """A temporary directory (keys, certificates, sources a test writes)
    removed when the test process exits, whatever the test's outcome."""
    d = tempfile.mkdtemp(prefix=prefix, dir=parent)
    atexit.register(shutil.rmtree, d, True)
    return d


class DaemonTestCase(unittest.TestCase):
    """Base class: one daemon per test class. Set `config` (section ->
    {key: value}) in a subclass to override the defaults."""

    config = {}
    env = {}
    store = None  # None: VALET_TEST_STORE, else memory
    d = None

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(cls.config, cls.env, store=cls.store)
        try:
            cls.d.start()
        except BaseException:
            cls.d.kill()
            raise

    @classmethod
    def tearDownClass(cls):
        d, cls.d = cls.d, None
        if d is not None:
            d.stop()

    # --- assertions -------------------------------------------------------
    def assertError(self, r, code, message=None, contains=None):
        """r is an error answer: status code, JSON error body, message."""
        self.assertEqual(r.status, code, r)
        self.assertTrue((r.header("content-type") or "").startswith("application/json"), r)
        body = r.json
        self.assertIsInstance(body, dict, r)
        self.assertEqual(set(body), ERROR_KEYS, r)
        self.assertEqual(body["code"], code, r)
        self.assertIs(body["error"], True, r)
        self.assertIsInstance(body["message"], str, r)
        if message is not None:
            self.assertEqual(body["message"], message, r)
        if contains is not None:
            self.assertIn(contains, body["message"], r)
        return body["message"]

    def assertNoBody(self, r, code=204):
        self.assertEqual(r.status, code, r)
        self.assertEqual(r.body, b"", r)

    def assertJob(self, job):
        """Formats every job must follow (API.md)."""
        self.assertRegex(job["id"], UUID4_RE)
        for k in ("name", "task_name", "status", "created_at"):
            self.assertIn(k, job)
        self.assertIn(job["status"], ("PENDING", "SCHEDULED", "IN_PROGRESS") + FINAL, job)
        for k in TIME_KEYS:
            if k in job:
                self.assertRegex(job[k], STRICT_TS_RE, "%s of %s" % (k, job))
        if job["status"] in ("COMPLETED", "FAILED"):
            self.assertIn("started_at", job)
            self.assertIn("completed_at", job)
            self.assertIn("duration", job)
            self.assertIs(type(job["duration"]), int, job)
            want = (parse_ts(job["completed_at"]) - parse_ts(job["started_at"])) * 1000
            self.assertAlmostEqual(job["duration"], want, delta=1.01, msg=job)
            self.assertIn("outcome", job)
            self.assertOutcome(job["outcome"])
        if job["status"] in ("PENDING", "SCHEDULED"):
            for k in ("started_at", "completed_at", "duration", "outcome"):
                self.assertNotIn(k, job)
        if job["status"] == "FAILED":
            self.assertIsInstance(job.get("failure_reason"), str, job)
            self.assertNotEqual(job["failure_reason"], "", job)
        if "use_previous_results" in job:
            self.assertIs(job["use_previous_results"], True, job)

    def assertOutcome(self, outcome):
        self.assertEqual(set(outcome), OUTCOME_KEYS, outcome)
        self.assertIs(type(outcome["pid"]), int, outcome)
        self.assertTrue(outcome["exit_code"] is None or type(outcome["exit_code"]) is int,
                        outcome)
        self.assertTrue(outcome["signal"] is None or re.match(r"^SIG[A-Z0-9]+$",
                                                              outcome["signal"]), outcome)
        # Never both an exit status and a killing signal. (Both are null for
        # a pipeline job whose child went on to run the next job.)
        self.assertFalse(outcome["exit_code"] is not None and outcome["signal"] is not None,
                         outcome)
        self.assertIs(type(outcome["timed_out"]), bool, outcome)
        self.assertIs(type(outcome["oom_killed"]), bool, outcome)
        self.assertTrue(outcome["seccomp_syscall"] is None
                        or isinstance(outcome["seccomp_syscall"], str), outcome)
        for k in ("cpu_ms", "wall_ms", "max_rss_kb", "memory_peak_kb"):
            self.assertTrue(outcome[k] is None or type(outcome[k]) is int, outcome)


def new_uuid():
    return str(uuid.uuid4())
