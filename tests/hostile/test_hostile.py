"""Hostile tasks against the real valetd: every case of cases.py, one by one
and then concurrently, on one daemon.

For each case: the recorded status, failure_reason (also the result's
"error"), the outcome fields and, for tasks that complete, the result they
report about what the kernel let them do; the job's isolation record. Then
the host must be clean (check_clean): no process of the job left - nothing
in the daemon's slot cgroups (valet.<daemon pid>/slot-*/cgroup.procs in every
hierarchy), nothing running as a task uid ([sandbox] uid_base + slot), no
descendant of valetd but the spawner and idle pre-forked children (each
asleep in read(0) on one of valetd's slot pipes, alone with the init of
its PID namespace: idle_warm); the same fds in valetd and its spawner as after the
warm-up, by what they hold (fd_targets); nothing the job wrote left on the host (files
named after this run's tag, or owned by a task uid, in /tmp, /var/tmp,
/dev/shm and the directories write_outside tries; SysV IPC objects); the
next exec job sees an empty /tmp, and a plain job completes. At the end,
valetd's RSS may not have grown by more than RSS_SLACK_KB since the warm-up.

Problems are collected rather than asserted one at a time, so that a report
names every broken property of a case; a problem that exists because an
issue 4 contract is missing starts with its name in brackets ("[pid
namespace] ..."). Leftover files, processes and IPC objects are removed
after being reported, so that one broken case does not fail the next.
"""

import collections
import os
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "integration"))
from valetd import (ASAN, EXEC_DIR, HOSTILE_EXEC, SECRET_ENV, Daemon,  # noqa: E402
                    DaemonTestCase, below, marker_pattern, memory_holds, pgrep, proc_table)
import cases  # noqa: E402
from cases import CASES, TIMEOUT  # noqa: E402

WORKERS = 4
# Slot N runs as UID_BASE + N: a range no other concurrent test run uses
# (64 apart, for at most 32 slots).
UID_BASE = 70000 + 64 * (os.getpid() % 2000)
NEW_KEYS = {"uid_base": str(UID_BASE), "namespaces": "true", "cgroups": "true",
            "allow_degraded_isolation": "false"}
# Kill latency allowed after a deadline, in ms (outcome.wall_ms).
KILL_SLACK_MS = 600 if ASAN else 300
# RSS growth allowed over the whole run after the warm-up: the jobs are
# deleted after each case, so what remains is allocator fragmentation (and
# leaks); the warm-up already ran the cases with the largest buffers (1 MiB
# output and result caps, four at once).
RSS_SLACK_KB = 4096
TAG = "%08x" % random.randrange(16 ** 8)
DB_SECRET = "dbpw-%d" % random.randrange(10 ** 9)
LEFT_NAME = re.compile(r"valet-hostile-(%s|mknod)" % TAG)
WRITE_DIRS = ("/", "/etc", "/usr", "/usr/local", "/var", "/var/tmp", "/opt", "/home", "/run",
              "/tmp", "/dev/shm", os.path.dirname(HOSTILE_EXEC))
FINAL = ("COMPLETED", "FAILED", "CANCELLED")


# --- the host, read directly -----------------------------------------------------
def slot_procs(daemon_pid):
    """({pid: cgroup dir}, [slot dirs]) under valet.<pid>/slot-* anywhere in
    /sys/fs/cgroup (sub-cgroups of a slot included)."""
    procs, slots = {}, []
    for top, dirs, _ in os.walk("/sys/fs/cgroup"):
        if os.path.basename(top) != "valet.%d" % daemon_pid:
            continue
        for slot in [d for d in dirs if d.startswith("slot-")]:
            slots.append(os.path.join(top, slot))
            for sub, _, _ in os.walk(os.path.join(top, slot)):
                try:
                    with open(os.path.join(sub, "cgroup.procs")) as f:
                        for line in f:
                            procs[int(line)] = sub
                except OSError:
                    pass
        dirs[:] = []
    return procs, slots


# The daemon's libraries: none is in the spawner's image, so none is in a job's.
DAEMON_LIBS = ("libev.so", "libpq.so", "libhttp_parser.so", "libinih.so", "libseccomp.so")


def maps_of(pid):
    """[(start, end, perms, path)] of /proc/pid/maps."""
    out = []
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            parts = line.split(None, 5)
            start, end = (int(x, 16) for x in parts[0].split("-"))
            out.append((start, end, parts[1], parts[5].strip() if len(parts) > 5 else ""))
    return out


def wchan(pid):
    try:
        with open("/proc/%d/wchan" % pid) as f:
            return f.read().strip()
    except OSError:
        return "?"


# The system call a pre-forked child waits for its input in: read(0, ...).
READ_NR = {"x86_64": 0, "aarch64": 63}.get(os.uname().machine)


def blocked_reading_stdin(pid):
    """Whether pid sleeps in read(0, ...) on a pipe (/proc/PID/syscall: the
    number, then the arguments; wchan: where in the kernel it sleeps)."""
    if wchan(pid) not in ("pipe_read", "anon_pipe_read"):
        return False
    if READ_NR is None:
        return True  # an architecture without its number here: wchan alone
    try:
        with open("/proc/%d/syscall" % pid) as f:
            call = f.read().split()
    except OSError:
        return False
    return len(call) > 1 and call[0] == str(READ_NR) and int(call[1], 16) == 0


def pidns_of(pid):
    try:
        return os.readlink("/proc/%d/ns/pid" % pid)
    except OSError:
        return None


def is_pidns_init(pid):
    """Whether pid is pid 1 of its PID namespace (/proc/PID/status NSpid)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            nspid = re.search(r"^NSpid:\s+(.*)$", f.read(), re.M).group(1).split()
    except (OSError, AttributeError):
        return False
    return len(nspid) > 1 and nspid[-1] == "1"


def idle_warm(pids, table, daemon_fds, spawner):
    """The pre-forked C-task children among pids that still wait for their
    input, with the inits of their PID namespaces - and nothing that merely
    looks like one: a process named valetd-job, asleep in read(0, ...),
    whose fd 0 is one of the daemon's slot pipes (valetd holds both ends of
    those until it writes an input; an exec task's stdin is its own, and
    valetd has let go of it), a child of the spawner, in a PID namespace
    that holds nothing but it and its pid 1, a valetd-init of the spawner's
    with no child; and the init of a slot's namespaces alone in them."""
    pipes = {t for t in daemon_fds.values() if t.startswith("pipe:")}
    idle = set()
    for p in pids:
        if table.get(p, (0, "", 0, ""))[3] != "valetd-job" or not blocked_reading_stdin(p):
            continue
        try:
            stdin = os.readlink("/proc/%d/fd/0" % p)
        except OSError:
            continue
        pidns = pidns_of(p)
        members = {q for q in table if pidns_of(q) == pidns}
        if stdin not in pipes or table[p][0] != spawner or pidns is None or len(members) != 2:
            continue
        init = (members - {p}).pop()
        if (table[init][3] != "valetd-init" or table[init][0] != spawner
                or not is_pidns_init(init) or any(v[0] == init for v in table.values())):
            continue
        idle |= {p, init}
    # C tasks' slot namespaces outlive their jobs (sandbox/sbx_init.c): an
    # idle one is its pid 1, a valetd-init of the spawner's, alone in it.
    for p in pids:
        if (table.get(p, (0, "", 0, ""))[3] == "valetd-init" and table[p][0] == spawner
                and is_pidns_init(p) and not any(v[0] == p for v in table.values())
                and {q for q in table if pidns_of(q) == pidns_of(p)} == {p}):
            idle.add(p)
    return idle


def idle_launchers(pids, table, spawner):
    """The slots' exec launchers among pids (sandbox/spawner_launch.c), and
    nothing that merely looks like one: a process named valetd-launch, a
    child of the spawner in the spawner's PID namespace (a task's
    CLONE_PARENT child is the spawner's too, but in the task's namespace),
    under seccomp with no_new_privs and no capability, holding only
    /dev/null on 0-2 and a socket on 3 - the one whose other end the
    spawner holds (helper_peers) - and asleep in recvmsg on it. Likewise
    the slots' forkers (sandbox/spawner_forker.c): named valetd-forker,
    holding the slot's pipes on 0-3 (stdin, output twice, frames: pipes
    valetd holds both ends of) and its socket on 4."""
    pipes = {t for t in fds_of(table[spawner][0]).values() if t.startswith("pipe:")}
    out = set()
    for comm, sock, peers in (("valetd-launch", 3, helper_peers(spawner)),
                              ("valetd-forker", 4, helper_peers(spawner, FORKER_COMM, 4))):
        for p in pids:
            if (table.get(p, (0, "", 0, ""))[3] != comm or table[p][0] != spawner
                    or pidns_of(p) != pidns_of(spawner) or p not in peers):
                continue
            try:
                with open("/proc/%d/status" % p) as f:
                    st = dict(l.rstrip("\n").split(":\t", 1) for l in f if ":\t" in l)
            except OSError:
                continue
            fds = fds_of(p)
            if (st.get("Seccomp") != "2" or st.get("NoNewPrivs") != "1"
                    or int(st.get("CapEff", "1"), 16) or sorted(fds) != list(range(sock + 1))
                    or wchan(p) not in ("__skb_wait_for_more_packets", "unix_dgram_recvmsg")):
                continue
            if sock == 3 and {fds[0], fds[1], fds[2]} != {"/dev/null"}:
                continue
            if sock == 4 and any(fds[i] not in pipes for i in range(4)):
                continue
            out.add(p)
    return out


FORKER_COMM = "valetd-forker"


def helper_peers(spawner, comm="valetd-launch", fd=3):
    """{helper pid: "socket:[INODE]" of the spawner's end of its socket}:
    the spawner's unix sockets whose peer is the fd of a child named comm
    (the slots' exec launchers: fd 3; their forkers: fd 4). ss -x gives
    each socket's peer inode; run in the spawner's network namespace,
    whose sockets those are."""
    helpers = [p for p, v in proc_table().items() if v[0] == spawner and v[3] == comm]
    if not helpers:
        return {}  # valetd's own fds, or a spawner with none: no ss to run
    try:
        ss = subprocess.run(["nsenter", "-t", str(spawner), "-n", "ss", "-xanH"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    peer = {}
    for line in ss.splitlines():
        f = line.split()
        if len(f) >= 8 and f[5].isdigit() and f[7].isdigit():
            peer[f[5]] = f[7]
    spawner_socks = {t for t in fds_of(spawner).values() if t.startswith("socket:")}
    out = {}
    for p in helpers:
        own = fds_of(p).get(fd, "")
        if own.startswith("socket:["):
            theirs = "socket:[%s]" % peer.get(own[8:-1], "?")
            if theirs in spawner_socks:
                out[p] = theirs
    return out


def socket_kinds(pid):
    """{"socket:[INODE]": "unix" or "tcp"} of the sockets in pid's network
    namespace (/proc/PID/net/*: the inode is column 7 of unix, 10 of tcp)."""
    kinds = {}
    for name, col in (("unix", 6), ("tcp", 9), ("tcp6", 9)):
        try:
            with open("/proc/%d/net/%s" % (pid, name)) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if len(cols) > col:
                kinds["socket:[%s]" % cols[col]] = "unix" if name == "unix" else "tcp"
    return kinds


SLOT_NS = "a worker slot's namespaces"
# One per slot with C-task namespaces, and one per slot that ran an exec
# task (its exec tasks' IPC namespace, kept as long as the spawner).
SLOT_IPC = "a worker slot's IPC namespace"
LAUNCHER = "a worker slot's exec launcher's socket"
FORKER = "a worker slot's forker's socket"


def fd_targets(fds, pid):
    """What the fds of pid hold, as a multiset comparable over time: a file,
    an anonymous inode or a namespace by name; a unix socket (the spawner's
    channel, a uid lock, ...) by its inode, as it never changes; a TCP
    socket as "tcp socket" (HTTP clients come and go); a pipe as "pipe,
    both ends" (a slot pipe: valetd keeps both, and makes new ones when a
    job left junk in the old) or "pipe, one end"."""
    kinds = socket_kinds(pid) if pid else {}
    launchers = set(helper_peers(pid).values()) if pid else set()
    forkers = set(helper_peers(pid, FORKER_COMM, 4).values()) if pid else set()
    ends = collections.Counter(t for t in fds.values() if t.startswith("pipe:"))
    own_pidns = pidns_of(pid) if pid else None
    out = collections.Counter()
    for t in fds.values():
        if t.startswith("ipc:"):
            out[SLOT_IPC] += 1
        elif t in ("/", own_pidns) or t.split(":")[0] in ("mnt", "uts", "pid"):
            # The spawner's own PID namespace, or a worker slot's
            # namespaces (and its root): made anew when a job was killed.
            out[SLOT_NS if t != own_pidns else t] += 1
        elif t.startswith("pipe:"):
            out["pipe, both ends" if ends[t] == 2 else "pipe, one end"] += 1
        elif t in launchers:
            out[LAUNCHER] += 1  # made anew with the slot's namespaces
        elif t in forkers:
            out[FORKER] += 1  # likewise
        elif t.startswith("socket:"):
            out["tcp socket" if kinds.get(t) == "tcp" else t] += 1
        else:
            out[t] += 1
    return out


def fds_of(pid):
    out = {}
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                out[int(fd)] = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                pass
    except OSError:
        pass
    return out


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"^VmRSS:\s+(\d+)", f.read(), re.M).group(1))


def remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except OSError:
            pass


def host_leftovers(uids):
    """Paths of this run's files (or a task uid's, in the shared scratch
    dirs) on the host; removed."""
    found = []
    for d in WRITE_DIRS:
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for n in names:
            p = os.path.join(d, n)
            owned = False
            if d in ("/tmp", "/var/tmp", "/dev/shm") and uids:
                try:
                    owned = os.lstat(p).st_uid in uids
                except OSError:
                    pass
            if LEFT_NAME.search(n) or owned:
                found.append(p)
                remove(p)
    return found


def sysv_leftovers(key, uids):
    """SysV IPC objects with our key or a task uid; removed."""
    found = []
    for kind, flag in (("shm", "-m"), ("msg", "-q"), ("sem", "-s")):
        try:
            with open("/proc/sysvipc/" + kind) as f:
                head, *rows = [line.split() for line in f]
        except OSError:
            continue
        for row in rows:
            obj = dict(zip(head, row))
            if int(obj["key"]) == key or int(obj.get("uid", -1)) in uids:
                found.append("%s key %s uid %s" % (kind, obj["key"], obj.get("uid")))
                ident = obj.get("shmid") or obj.get("msqid") or obj.get("semid")
                subprocess.run(["ipcrm", flag, ident], stderr=subprocess.DEVNULL)
    return found


def drain(sock):
    """Accept (and close) every pending connection; how many there were."""
    n = 0
    while True:
        try:
            conn, _ = sock.accept()
        except (BlockingIOError, InterruptedError):
            return n
        conn.close()
        n += 1


def resolve(v, ctx):
    if isinstance(v, str) and v.startswith("$"):
        return ctx[v[1:]]
    if isinstance(v, dict):
        return {k: resolve(x, ctx) for k, x in v.items()}
    return v


def summary(problems):
    """Problems "case: text", grouped by text."""
    by_text = {}
    for p in problems:
        case, _, text = p.partition(": ")
        by_text.setdefault(text, []).append(case)
    return "\n".join("- %s\n    in: %s" % (t, ", ".join(cs)) for t, cs in by_text.items())


def kept_in_tmp(conf):
    """What valetd binds (read-only) into every job's /tmp: the top entries
    of the host's /tmp that hold an exec task's program or script - when
    this checkout lives under /tmp."""
    names = set()
    for sec, keys in conf.items():
        if not sec.startswith("task."):
            continue
        for arg in shlex.split(keys.get("command", "")):
            if arg.startswith("/tmp/") and os.path.exists(arg):
                names.add(arg.split("/")[2])
    return names


def daemon_config(victim_marker):
    """The hostile daemon's config: full isolation, a uid per slot."""
    sandbox = {} if ASAN else {"memory_limit": "64M"}  # ASan needs its address space
    sandbox.update(NEW_KEYS)
    conf = {"queue": {"workers": str(WORKERS)}, "jobs": {"default_timeout": "1.5s"},
            "storage": {"database_url": "postgres://valet:%s@localhost/valet" % DB_SECRET},
            "sandbox": sandbox}
    tasks = {"hx_ls_tmp": "ls_tmp", "hx_ipc_check": "ipc_check"}
    for case in CASES.values():
        if "argv" in case:
            tasks[case["task"]] = case["argv"]
    for task, argv in tasks.items():
        sec = {"command": "%s %s" % (HOSTILE_EXEC, argv)}
        if task.endswith("_net"):
            sec["profile"] = "exec+net"
        conf["task." + task] = sec
    conf["task.hx_victim"] = {"command": "%s/sleep.sh %s" % (EXEC_DIR, victim_marker)}
    return conf


class HostileTest(DaemonTestCase):
    store = "memory"

    @classmethod
    def setUpClass(cls):
        cls.victim_marker = "1000.%09d" % random.randrange(10 ** 9)
        conf = daemon_config(cls.victim_marker)
        cls.kept = kept_in_tmp(conf)
        # The config in /var/tmp, readable by all: only the sandbox hides it.
        cls.d = Daemon(conf, store="memory", tmp_parent="/var/tmp")
        cls.host = []
        if not os.path.isdir("/run/postgresql") and os.geteuid() == 0:
            # No PostgreSQL installed: the directory its socket would be
            # in, made before valetd starts (which hides it), so that the
            # socket canary of _set_up_host() is always there. Removed
            # last, with what is in it.
            os.mkdir("/run/postgresql", 0o755)
            cls.host.append("/run/postgresql")
        try:
            cls.d.start()
            os.chmod(cls.d.tmp, 0o755)
            os.chmod(cls.d.conf_path, 0o644)
            cls._set_up_host()
            cls._warm_up()
        except BaseException:
            cls._tear_down_host()
            cls.d.cleanup()
            raise

    @classmethod
    def _set_up_host(cls):
        # valetd has 2 x workers slots: jobs running and children forked ahead.
        cls.uids = set(range(UID_BASE, UID_BASE + 2 * WORKERS))
        cls.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        cls.tcp.bind(("127.0.0.1", 0))
        cls.tcp.listen(16)
        cls.tcp.setblocking(False)
        cls.abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        cls.abstract.bind("\0valet-hostile-abstract-" + TAG)
        cls.abstract.listen(16)
        cls.abstract.setblocking(False)
        cls.canary = "/var/tmp/valet-canary-" + TAG
        os.makedirs(cls.canary)
        with open(os.path.join(cls.canary, "keep"), "w") as f:
            f.write("canary\n")
        cls.host.append(cls.canary)
        cls.pg_canary = None
        if os.path.isdir("/run/postgresql"):
            cls.pg_canary = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            path = "/run/postgresql/valet-canary-%s.sock" % TAG
            cls.pg_canary.bind(path)
            cls.host.append(path)
        suid = HOSTILE_EXEC + "_suid"
        shutil.copy(HOSTILE_EXEC, suid)
        os.chown(suid, 0, 0)
        os.chmod(suid, 0o4755)
        cls.host.append(suid)
        st = os.stat("/etc/passwd")
        cls.passwd = (st.st_size, st.st_mtime_ns, st.st_mode, st.st_uid)
        probe = subprocess.run([HOSTILE_EXEC, "probe_int80"])
        pgsock = ""
        url = os.environ.get("VALET_TEST_DATABASE_URL", "")
        q = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)
        if q.get("host", [""])[0].startswith("/"):
            pgsock = "%s/.s.PGSQL.%s" % (q["host"][0], q.get("port", ["5432"])[0])
        cls.ctx = {
            "daemon": cls.d.proc.pid, "tag": TAG, "port": cls.tcp.getsockname()[1],
            "abstract": "valet-hostile-abstract-" + TAG, "canary": cls.canary,
            "config": cls.d.conf_path, "pgsock": pgsock, "key": random.randrange(1, 2 ** 31),
            "secret_rev": cls.d.secret[::-1], "db_secret_rev": DB_SECRET[::-1],
            "secret_env": SECRET_ENV, "asan": ASAN, "uid": None, "victim": None,
            # A kernel without IA32 emulation faults on int 0x80 before
            # seccomp sees a system call.
            "int80_reason": cases.FORBIDDEN if probe.returncode == 0 else cases.SEGV,
            "int80_outcome": cases.SIGSYS_UNNAMED if probe.returncode == 0
            else cases.crash("SIGSEGV"),
            # Under the exec profiles: ENOSYS (COMPLETED with that result).
            "x_int80_reason": None if probe.returncode == 0 else cases.SEGV,
            "x_int80_outcome": None if probe.returncode == 0 else cases.crash("SIGSEGV"),
        }

    @classmethod
    def _warm_up(cls):
        """Run the cases with the largest buffers, four at once, then note
        valetd's processes, fds and RSS."""
        ids = [cls.d.submit("dummytask")["id"], cls.d.submit("hx_ls_tmp")["id"]]
        for cid in ("c_flood_stdout", "c_flood_stderr", "sh_flood", "sh_flood_stderr",
                    "c_bigresult"):
            ids.append(cls.d.submit(CASES[cid]["task"], CASES[cid].get("params"),
                                    timeout=10)["id"])
        cls.d.wait_all(ids, timeout=30)
        for jid in ids:
            cls.d.delete("/api/jobs/" + jid)
        time.sleep(0.2)
        table = proc_table()
        spawners = [p for p in below(table, cls.d.proc.pid) if table[p][3] == "valetd-spawner"]
        cls.spawner = spawners[0] if spawners else None
        # The exec+net slots' network helpers live as long as valetd.
        cls.helpers = {p for p in below(table, cls.d.proc.pid) if table[p][3] == "slirp4netns"}
        cls.fds = fd_targets(fds_of(cls.d.proc.pid), cls.d.proc.pid)
        cls.spawner_fds = fd_targets(fds_of(cls.spawner), cls.spawner) if cls.spawner else {}
        cls.rss = rss_kb(cls.d.proc.pid)
        cls.cgroup_claimed = False

    @classmethod
    def _tear_down_host(cls):
        for s in ("tcp", "abstract", "pg_canary"):
            if getattr(cls, s, None):
                getattr(cls, s).close()
        for p in reversed(cls.host):
            remove(p)

    @classmethod
    def tearDownClass(cls):
        cls._tear_down_host()
        super().tearDownClass()

    # --- one batch of cases, run at the same time --------------------------------
    def run_batch(self, cids, concurrent=False):
        """Run cids at once (at most WORKERS, one less with a victim); the
        problems found, each "case: text"."""
        ctx = dict(self.ctx)
        victim = None
        if any(CASES[c].get("victim") for c in cids):
            victim = self.start_victim()
            ctx["victim"] = victim[1]
        jobs = {}
        for cid in cids:
            case = CASES[cid]
            params = resolve(case.get("params"), ctx)
            extra = {"limits": case["limits"]} if case.get("limits") else {}
            jobs[cid] = self.d.submit(case["task"], params, timeout=case.get("timeout", 5),
                                      **extra)
        wait = max((CASES[c].get("timeout") or 2) for c in cids) + 15
        done = self.d.wait_all([j["id"] for j in jobs.values()], timeout=wait)
        problems = []
        for cid, job in jobs.items():
            problems += ["%s: %s" % (cid, p)
                         for p in self.check_outcome(cid, done[job["id"]], ctx, concurrent)]
        if victim:
            problems += ["%s: %s" % ("+".join(cids), p) for p in self.end_victim(victim)]
        problems += ["%s: %s" % ("+".join(cids), p) for p in self.check_clean(cids)]
        for job in jobs.values():
            self.d.delete("/api/jobs/" + job["id"])
        return problems

    def start_victim(self):
        """Another job (a sleeping exec task): (job, host pid of its sleep)."""
        job = self.d.submit("hx_victim", timeout=30)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            pids = pgrep(marker_pattern(self.victim_marker))
            if pids:
                return job, pids[0]
            time.sleep(0.01)
        raise AssertionError("the victim job did not start: %s" % self.d.job(job["id"]))

    def end_victim(self, victim):
        job, pid = victim
        out = []
        now = self.d.job(job["id"])
        if now["status"] != "IN_PROGRESS" or pid not in pgrep(marker_pattern(self.victim_marker)):
            out.append("the other job was disturbed: %s %s"
                       % (now["status"], now.get("failure_reason")))
        self.d.post("/api/jobs/%s/cancel" % job["id"])
        self.d.wait_for(job["id"], FINAL, timeout=10)
        self.d.delete("/api/jobs/" + job["id"])
        return out

    # --- what the job recorded ---------------------------------------------------------
    def check_outcome(self, cid, job, ctx, concurrent):
        case = CASES[cid]
        needs = "[%s] " % case["needs"] if case.get("needs") else ""
        reason = resolve(case.get("reason"), ctx)
        status = "FAILED" if reason else "COMPLETED"
        out = []
        got = job.get("failure_reason")
        if job["status"] != status or (reason and got not in (
                reason if isinstance(reason, tuple) else (reason,))):
            out.append("%sexpected %s %r, got %s %r"
                       % (needs, status, reason, job["status"], got))
        try:
            self.assertJob(job)
        except AssertionError as e:
            out.append("job format: %s" % str(e).splitlines()[0])
        want = resolve(case.get("outcome"), ctx)
        if want is None and status == "COMPLETED":
            want = dict(cases.EXIT0, oom_killed=False, seccomp_syscall=None)
        for k, v in (want or {}).items():
            if job.get("outcome", {}).get(k) != v:
                out.append("%soutcome.%s is %r, not %r"
                           % (needs, k, job.get("outcome", {}).get(k), v))
        iso, ctx["uid"] = self.check_isolation(job, case)
        out += iso
        res = self.d.result(job["id"])
        if job["status"] == "FAILED" and res.get("error") != got:
            out.append("result error %r differs from failure_reason" % res.get("error"))
        if job["status"] == "COMPLETED" == status and "result" in case:
            meta, want = res.get("metadata"), case["result"]
            if callable(want):
                out += [p if p.startswith("[") else needs + p for p in want(meta or {}, ctx)]
            elif meta != want:
                out.append("%sexpected result %s, got %s" % (needs, want, meta))
        if case.get("outcome") is TIMEOUT and job["outcome"].get("wall_ms") is not None:
            deadline = (case.get("timeout") or 0) * 1000 or case.get("deadline_ms", 1500)
            slack = KILL_SLACK_MS * (2 if concurrent else 1)
            if not deadline - 50 <= job["outcome"]["wall_ms"] <= deadline + slack:
                out.append("killed %d ms after a %d ms deadline"
                           % (job["outcome"]["wall_ms"] - deadline, deadline))
        if case.get("max_ms") and job.get("duration", 0) > case["max_ms"]:
            out.append("took %d ms: the job waited for a leftover child" % job["duration"])
        if case.get("marker"):
            left = pgrep(marker_pattern(self.d.markers[case["task"]]))
            if left:
                out.append("processes of the finished job still run: %s" % left)
        return out

    def check_isolation(self, job, case):
        """(problems, the job's uid or None)."""
        iso = job.get("isolation")
        if not isinstance(iso, dict):
            return ["[isolation record] the job has no isolation record"], None
        out = []
        ns = {"pid", "mount", "ipc", "uts", "net"}
        if set(iso.get("namespaces") or []) != ns:
            out.append("[isolation] namespaces %s, not %s" % (iso.get("namespaces"), sorted(ns)))
        network = "slirp4netns" if case.get("net") else "none"
        if iso.get("network") != network:
            out.append("[isolation] network %r, not %r" % (iso.get("network"), network))
        if iso.get("cgroup") not in ("v1", "v2"):
            out.append("[isolation] cgroup is %r" % iso.get("cgroup"))
        else:
            type(self).cgroup_claimed = True
        uid = iso.get("uid")
        if self.uids and uid not in self.uids:
            out.append("[%s] isolation.uid %r is not in %d..%d"
                       % (cases.UID, uid, min(self.uids), max(self.uids)))
        if iso.get("profile") != case["profile"]:
            out.append("[isolation] profile %r, not %r" % (iso.get("profile"), case["profile"]))
        if iso.get("degraded") is not False:
            out.append("[isolation] degraded is %r" % iso.get("degraded"))
        return out, uid if isinstance(uid, int) else None

    # --- the host afterwards -------------------------------------------------------------
    def leftover_procs(self):
        table = proc_table()
        cg, slots = slot_procs(self.d.proc.pid)
        where = {p: "under valetd"
                 for p in below(table, self.d.proc.pid) - {self.spawner} - self.helpers}
        where.update({p: "in " + d for p, d in cg.items()})
        where.update({p: "uid %d" % table[p][2] for p in table if table[p][2] in self.uids})
        idle = idle_warm(set(where), table, fds_of(self.d.proc.pid), self.spawner)
        idle |= idle_launchers(set(where), table, self.spawner)
        left = {p: "%d %s (%s, %s)" % (p, table.get(p, (0, "?", 0, "?"))[3],
                                       table.get(p, (0, "?"))[1], w)
                for p, w in where.items() if p not in idle}
        return left, slots

    def check_clean(self, cids):
        out = []
        deadline = time.monotonic() + 2
        while True:
            left, slots = self.leftover_procs()
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        if left:
            out.append("processes left: %s" % sorted(left.values()))
            for p in left:  # do not leave them to the next case
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
        if self.cgroup_claimed and not slots:
            out.append("[cgroup] the jobs name a cgroup, but there is no valet.%d/slot-* "
                       "directory under /sys/fs/cgroup" % self.d.proc.pid)
        for name, pid, base in (("valetd", self.d.proc.pid, self.fds),
                                ("the spawner", self.spawner, self.spawner_fds)):
            # The same fds as after the warm-up, by what they hold: one
            # leaked and another closed is two problems, not none.
            deadline = time.monotonic() + 2
            while True:
                now = fd_targets(fds_of(pid), pid) if pid else collections.Counter()
                # 5 fds per slot that has C-task namespaces (4 here, and
                # its IPC namespace), none for one whose namespaces went
                # after a kill; and at most one per slot for its exec
                # tasks' IPC namespace.
                # And one socket per slot with an exec launcher.
                slot_ns, slot_ipc = now.pop(SLOT_NS, 0), now.pop(SLOT_IPC, 0)
                launchers, forkers = now.pop(LAUNCHER, 0), now.pop(FORKER, 0)
                base = +(base - collections.Counter({SLOT_NS: base[SLOT_NS],
                                                     SLOT_IPC: base[SLOT_IPC],
                                                     LAUNCHER: base[LAUNCHER],
                                                     FORKER: base[FORKER]}))
                if now == base or time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            if (slot_ns % 4 or slot_ns > 4 * len(self.uids) or slot_ipc < slot_ns // 4 or
                    slot_ipc > slot_ns // 4 + len(self.uids)):
                out.append("%s holds %d fds of slot namespaces, %d of IPC namespaces"
                           % (name, slot_ns, slot_ipc))
            if launchers > len(self.uids):
                out.append("%s holds %d launchers' sockets" % (name, launchers))
            if forkers > len(self.uids):
                out.append("%s holds %d forkers' sockets" % (name, forkers))
            if now != base:
                out.append("%s's fds changed: new %s, gone %s"
                           % (name, dict(now - base), dict(base - now)))
        for p in host_leftovers(self.uids):
            tag = cases.TMP if p.startswith("/tmp/") else cases.RO
            out.append("[%s] left on the host: %s" % (tag, p))
        for o in sysv_leftovers(self.ctx["key"], self.uids):
            out.append("[%s] left on the host: SysV %s" % (cases.IPCNS, o))
        st = os.stat("/etc/passwd")
        if (st.st_size, st.st_mtime_ns, st.st_mode, st.st_uid) != self.passwd:
            out.append("/etc/passwd changed")
        if not os.path.exists(os.path.join(self.canary, "keep")):
            out.append("the canary behind a job's symlink is gone")
        if drain(self.tcp):
            out.append("[%s] a job connected to the host's 127.0.0.1:%d"
                       % (cases.NETNS, self.ctx["port"]))
        if drain(self.abstract):
            out.append("[%s] a job connected to the host's abstract socket" % cases.NETNS)
        out += self.check_next_jobs(any(CASES[c].get("ipc") for c in cids))
        if not self.d.alive():
            out.append("valetd died")
        return out

    def check_next_jobs(self, ipc):
        """The next jobs: an empty /tmp, no IPC objects of the last one, a
        plain task that completes."""
        out = []
        jobs = {"ls": self.d.submit("hx_ls_tmp"), "dummy": self.d.submit("dummytask", {"n": 1})}
        if ipc:
            jobs["ipc"] = self.d.submit("hx_ipc_check", {"key": self.ctx["key"]})
        done = self.d.wait_all([j["id"] for j in jobs.values()], timeout=15)
        meta = {k: (done[j["id"]]["status"], self.d.result(j["id"]).get("metadata"))
                for k, j in jobs.items()}
        status, ls = meta["ls"]
        if status != "COMPLETED" or set((ls or {}).get("tmp", ["?"])) != self.kept:
            out.append("[%s] the next job's /tmp is not empty: %s" % (cases.TMP, meta["ls"]))
        if meta["dummy"] != ("COMPLETED", {"n": 1}):
            out.append("the next plain job did not complete: %s" % (meta["dummy"],))
        # Not found (ENOENT), or SysV IPC not allowed at all: anything but "ok".
        if ipc and (meta["ipc"][0] != "COMPLETED" or "ok" in (meta["ipc"][1] or {}).values()):
            out.append("[%s] the next job sees the IPC objects: %s" % (cases.IPCNS, meta["ipc"]))
        for j in jobs.values():
            self.d.delete("/api/jobs/" + j["id"])
        return out

    def skip_reason(self, cid):
        if CASES[cid].get("asan") is False and ASAN:
            return "asan: no memory limit under ASan"
        return None

    # --- the tests ---------------------------------------------------------------------------
    def test_2_concurrent(self):
        """Every case again, WORKERS at a time (one less with a victim),
        batched by expected length."""
        def length(cid):
            case = CASES[cid]
            return (case.get("timeout") or 1.5) if case.get("outcome") is TIMEOUT else 0
        todo = sorted((c for c in CASES if not self.skip_reason(c)),
                      key=lambda c: (bool(CASES[c].get("victim")), length(c), c))
        problems = []
        while todo:
            size = WORKERS - 1 if CASES[todo[0]].get("victim") else WORKERS
            batch = [c for c in todo[:size] if bool(CASES[c].get("victim"))
                     == bool(CASES[todo[0]].get("victim"))]
            todo = todo[len(batch):]
            problems += self.run_batch(batch, concurrent=True)
        if problems:
            self.fail("concurrent run:\n" + summary(problems))

    def test_3_slot_pipes_clean(self):
        """A slot's pipes go from one child to the next (run.c): after a
        case that wrote junk, floods or partial frames, each of the next
        jobs, one at a time so that every slot comes round, gets exactly
        its own result."""
        problems = []
        for cid in ("c_flood_stdout", "c_flood_stderr", "c_frame_garbage", "c_frame_truncated",
                    "c_frame_huge", "c_result_then_crash", "c_noresult", "c_bigresult"):
            case = CASES[cid]
            bad = self.d.submit(case["task"], resolve(case.get("params"), self.ctx),
                                timeout=case.get("timeout", 5))
            self.d.wait_all([bad["id"]], timeout=30)
            for n in range(2 * WORKERS + 1):
                job = self.d.submit("dummytask", {"case": cid, "n": n})
                done = self.d.wait_all([job["id"]], timeout=15)[job["id"]]
                got = (done["status"], self.d.result(job["id"]).get("metadata"))
                if got != ("COMPLETED", {"case": cid, "n": n}):
                    problems.append("%s, then job %d: %s" % (cid, n, got))
                self.d.delete("/api/jobs/" + job["id"])
            self.d.delete("/api/jobs/" + bad["id"])
        if problems:
            self.fail("\n".join(problems))

    def test_3_rss(self):
        if ASAN:
            self.skipTest("asan: ASan's quarantine keeps freed memory")
        now = rss_kb(self.d.proc.pid)
        sys.stderr.write("valetd RSS: %d kB after the warm-up, %d kB now\n" % (self.rss, now))
        self.assertLessEqual(now - self.rss, RSS_SLACK_KB,
                             "valetd's RSS grew from %d to %d kB" % (self.rss, now))

    def test_4_image(self):
        """A running C task's process has none of the daemon's libraries
        mapped, and no trace of the database URL's password or of valetd's
        environment anywhere in its memory: the spawner it was forked from
        is a program of its own that never had them. valetd itself has
        both, and the task its params: the scan finds what is there."""
        if ASAN:
            # Its shadow memory is terabytes of writable mappings: a scan of
            # every writable byte does not end. The plain build runs this.
            self.skipTest("asan: ASan's shadow memory cannot be scanned byte by byte")
        marker = "valet-image-%s" % TAG
        job = self.d.submit("hostile_sleep", {"marker": marker}, timeout=30)
        db, env = DB_SECRET.encode(), self.d.secret.encode()
        try:
            task, deadline = None, time.monotonic() + 15
            while task is None and time.monotonic() < deadline:
                for pid in slot_procs(self.d.proc.pid)[0]:
                    try:
                        if marker.encode() in memory_holds(pid, [marker.encode()]):
                            task = pid
                    except OSError:
                        pass
                time.sleep(0.05)
            self.assertIsNotNone(task, "no process in the slots holds the job's params")
            libs = sorted({os.path.basename(m[3]) for m in maps_of(task)
                           if any(os.path.basename(m[3]).startswith(l) for l in DAEMON_LIBS)})
            self.assertEqual(libs, [], "the job child maps the daemon's libraries")
            self.assertEqual(memory_holds(task, [db, env]), set(),
                             "a secret of the daemon is in the job child's memory")
            self.assertEqual(memory_holds(self.spawner, [db, env]), set(),
                             "a secret of the daemon is in the spawner's memory")
            self.assertEqual(memory_holds(self.d.proc.pid, [db, env]), {db, env},
                             "the scan does not find valetd's own secrets")
        finally:
            self.d.delete("/api/jobs/" + job["id"])  # cancels it: the child is killed

    def test_3_still_serving(self):
        r = self.d.get("/api/status")
        self.assertEqual(r.status, 200, r)
        self.assertIs(r.json["job_queue_healthy"], True)


def _make(cid):
    def test(self):
        reason = self.skip_reason(cid)
        if reason:
            self.skipTest(reason)
        problems = self.run_batch([cid])
        if problems:
            self.fail("\n".join(problems))
    return test


for _cid in CASES:
    setattr(HostileTest, "test_1_" + _cid, _make(_cid))


if __name__ == "__main__":
    unittest.main()
