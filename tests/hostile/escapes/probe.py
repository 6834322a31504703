#!/usr/bin/env python3
"""An exec task that tries what tests/hostile/test_escapes.py (and the
tests of tests/integration/test_isolation.py) ask of it.

Reads {"params": {...}} on stdin and prints one JSON object: for each thing
tried, what happened - "ok"/"connected"/data, or the errno's name (ENOENT,
EPERM, ECONNREFUSED, ...), so that the tests compare names, not messages.
The order: first "until" (wait for a path the test creates, so that the
test decides when the job may end: a job that waits is provably running),
then the observations, then the attempts.
"""
import errno
import json
import os
import socket
import sys
import time


def err(e):
    if isinstance(e, OSError) and e.errno:
        return errno.errorcode.get(e.errno, str(e.errno))
    if isinstance(e, socket.timeout):
        return "TIMEOUT"
    return type(e).__name__


def connect(family, host, port):
    try:
        s = socket.socket(family, socket.SOCK_STREAM)
    except OSError as e:  # a profile without network: EPERM
        return err(e)
    s.settimeout(3)
    try:
        s.connect((host, port))
        return "connected"
    except Exception as e:  # noqa: BLE001 - the answer is the point
        return err(e)
    finally:
        s.close()


# statvfs f_flag bits (sys/statvfs.h), by the name mountinfo uses.
ST_FLAGS = {"ro": os.ST_RDONLY, "nosuid": os.ST_NOSUID, "nodev": os.ST_NODEV,
            "noexec": os.ST_NOEXEC}


def until(path, timeout):
    """Wait for path to exist: "seen", or "TIMEOUT"."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return "TIMEOUT"
        time.sleep(0.01)
    return "seen"


def whoami():
    """Who and where this process is: ids, pids, host name, namespaces."""
    ns = {}
    for name in ("pid", "mnt", "ipc", "uts", "net", "cgroup"):
        try:
            ns[name] = os.readlink("/proc/self/ns/" + name)
        except OSError as e:
            ns[name] = err(e)
    try:
        with open("/proc/1/comm") as f:
            init = f.read().strip()
    except OSError as e:
        init = err(e)
    return {"uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(),
            "pid": os.getpid(), "ppid": os.getppid(), "nodename": os.uname().nodename,
            "ns": ns, "init": init}


def limits():
    """/proc/self/limits: {"Max address space": [soft, hard], ...}, numbers or
    "unlimited"."""
    out = {}
    with open("/proc/self/limits") as f:
        next(f)
        for line in f:
            name, soft, hard = line[:26].strip(), line[26:47].strip(), line[47:68].strip()
            out[name] = [int(v) if v.isdigit() else v for v in (soft, hard)]
    return out


def abstract_listen(name, wait_for, timeout):
    """Listen on an abstract AF_UNIX socket; connect to it from this process
    (the positive control: the same network namespace reaches it); stay
    until wait_for exists."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind("\0" + name)
    s.listen(4)
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        c.connect("\0" + name)
        self_connect = "connected"
    except OSError as e:
        self_connect = err(e)
    c.close()
    return {"self": self_connect, "until": until(wait_for, timeout)}


def scm_cycle(name, mb):
    """Sockets and memory no process owns: a listener, a connection to it
    whose accepted end is never taken, and mb MiB of memfds, all sent over
    that connection into the accepted end's queue - a cycle only the
    kernel's AF_UNIX garbage collector frees, once the job is gone."""
    fds, blk = [], b"S" * (1 << 20)
    while mb > 0:  # memfds of at most 15 MiB (RLIMIT_FSIZE may be 16M)
        m, n = os.memfd_create("inflight"), min(mb, 15)
        for i in range(n):
            os.pwrite(m, blk, i << 20)
        fds.append(m)
        mb -= n
    lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lst.bind("\0" + name)
    lst.listen(4)
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect("\0" + name)
    socket.send_fds(c, [b"x"], [lst.fileno(), c.fileno()] + fds)
    # The positive control: while the job runs, its namespace lists them.
    return {"memfds": len(fds), "listed": [r[-1] for r in net_rows("unix") if len(r) > 7]}


def time_wait(n):
    """n connections over the loopback that this end closes first: each
    leaves a TIME_WAIT socket, from local port 40000 + i (the message)."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(n)
    for i in range(n):
        c = socket.socket()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        c.bind(("127.0.0.1", 40000 + i))
        c.connect(srv.getsockname())
        a, _ = srv.accept()
        c.close()
        a.close()
    # The positive control: this namespace's table lists the listener.
    listed = [r[1] for r in net_rows("tcp")]
    srv.close()
    return {"closed": n, "listed": listed}


def net_rows(name):
    """The sockets /proc/net/<name> lists (its lines but the heading)."""
    with open("/proc/net/" + name) as f:
        return [line.split() for line in f.read().splitlines()[1:]]


def main():
    p = json.load(sys.stdin)["params"] or {}
    out = {}
    if p.get("listen"):
        out["listen"] = abstract_listen(p["listen"], p["listen_until"], p.get("timeout", 20))
    if p.get("until"):
        out["until"] = until(p["until"], p.get("timeout", 20))
    if p.get("net"):
        out["net"] = {name: net_rows(name) for name in p["net"]}
    if p.get("alloc"):
        # Touch this many MiB, a page at a time (the memory limit's test).
        buf = bytearray(p["alloc"] << 20)
        for i in range(0, len(buf), 4096):
            buf[i] = 1
        out["alloc"] = "ok"
    if p.get("whoami"):
        out["whoami"] = whoami()
    if p.get("limits"):
        out["limits"] = limits()
    for path in p.get("readlink", []):
        try:
            out["readlink " + path] = os.readlink(path)
        except OSError as e:
            out["readlink " + path] = err(e)
    for path in p.get("statvfs", []):
        try:
            st = os.statvfs(path)
            out["statvfs " + path] = {
                "flags": sorted(k for k, bit in ST_FLAGS.items() if st.f_flag & bit),
                "bytes": st.f_blocks * st.f_frsize}
        except OSError as e:
            out["statvfs " + path] = err(e)
    for pid, sig in p.get("kill", []):
        try:
            os.kill(pid, sig)
            out["kill %d %d" % (pid, sig)] = "ok"
        except OSError as e:
            out["kill %d %d" % (pid, sig)] = err(e)
    if p.get("renice_user"):
        # Every process of this uid this one can see, niced (PRIO_USER).
        try:
            os.setpriority(os.PRIO_USER, 0, p["renice_user"])
            out["renice_user"] = "ok"
        except OSError as e:
            out["renice_user"] = err(e)
    for host, port in p.get("tcp", []):
        out["tcp %s:%d" % (host, port)] = connect(socket.AF_INET, host, port)
    for host, port in p.get("tcp6", []):
        out["tcp6 [%s]:%d" % (host, port)] = connect(socket.AF_INET6, host, port)
    for name in p.get("abstract", []):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect("\0" + name)
            out["@" + name] = "connected"
        except OSError as e:
            out["@" + name] = err(e)
        s.close()
    for path in p.get("unix", []):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            out["unix " + path] = "connected"
        except OSError as e:
            out["unix " + path] = err(e)
        s.close()
    for fam, typ, proto in p.get("sockets", []):
        try:
            socket.socket(fam, typ, proto).close()
            out["socket %d %d %d" % (fam, typ, proto)] = "ok"
        except OSError as e:
            out["socket %d %d %d" % (fam, typ, proto)] = err(e)
    for path in p.get("read", []):
        try:
            with open(path, "rb") as f:
                out["read " + path] = f.read().decode(errors="replace")
        except OSError as e:
            out["read " + path] = err(e)
    for path in p.get("write", []):
        try:
            with open(path, "w") as f:
                f.write("x")
            out["write " + path] = "ok"
        except OSError as e:
            out["write " + path] = err(e)
    for path in p.get("unlink", []):
        try:
            os.unlink(path)
            out["unlink " + path] = "ok"
        except OSError as e:
            out["unlink " + path] = err(e)
    if p.get("leave"):
        # A process that outlives the job: its own session, not waited for.
        pid = os.fork()
        if pid == 0:
            os.setsid()
            time.sleep(p["leave"])
            os._exit(0)
        out["left"] = pid
    for path in p.get("ls", []):
        try:
            out["ls " + path] = sorted(os.listdir(path))
        except OSError as e:
            out["ls " + path] = err(e)
    if p.get("mountinfo"):
        mounts = []
        with open("/proc/self/mountinfo") as f:
            for line in f:
                a = line.split()
                dash = a.index("-")
                mounts.append({"point": a[4], "opts": a[5].split(","), "fstype": a[dash + 1]})
        out["mountinfo"] = mounts
    if p.get("status"):
        with open("/proc/self/status") as f:
            out["status"] = dict(l.rstrip("\n").split(":\t", 1) for l in f if ":\t" in l)
    if p.get("forkbomb"):
        # Fork until the kernel says no, keep them for a while, then go.
        kids, why = [], "none"
        while len(kids) < 10000:
            try:
                pid = os.fork()
            except OSError as e:
                why = err(e)
                break
            if pid == 0:
                time.sleep(p["forkbomb"])
                os._exit(0)
            kids.append(pid)
        out["forked"] = len(kids)
        out["stopped_by"] = why
        for k in kids:
            os.waitpid(k, 0)
    if p.get("fork"):
        kids, why = [], "ok"
        for _ in range(p["fork"]):
            try:
                pid = os.fork()
            except OSError as e:
                why = err(e)
                break
            if pid == 0:
                time.sleep(0.2)
                os._exit(0)
            kids.append(pid)
        for k in kids:
            os.waitpid(k, 0)
        out["fork"] = why
    if p.get("scm_cycle"):
        out["scm_cycle"] = scm_cycle(p["scm_cycle"], p.get("mb", 0))
    if p.get("time_wait"):
        out["time_wait"] = time_wait(p["time_wait"])
    if p.get("sleep"):
        time.sleep(p["sleep"])
    print(json.dumps(out))


main()
