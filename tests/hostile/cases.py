"""The hostile cases of tests/hostile/test_hostile.py: what each task does and
what valet must record for it.

A case is a dict:
  task      the task name (C: hostile_* in hostile.c; exec: hx_* runs
            `hostile_exec CASE`, exec_* are the scripts in exec/)
  params    task_params; a string "$name" is replaced by the run's value
            (victim: the pid of another job's process, daemon: valetd's pid,
            tag: unique to this run, port: a TCP listener of the test,
            abstract: an abstract AF_UNIX socket of the test, canary: a
            host directory, config: valetd's config file, pgsock: the test
            PostgreSQL server's socket, key: a SysV IPC key)
  timeout   the job's timeout in seconds (None: the daemon's 1.5s default)
  reason    the exact failure_reason (status FAILED), a tuple where two are
            honest (each says why), or None (status COMPLETED)
  outcome   fields of the job's outcome that must have these values
  result    COMPLETED only: the exact metadata, or f(metadata, ctx) -> list
            of problems
  needs     the issue 4 contract the expected outcome relies on, named in
            the report when it is not met ("pid namespace", ...)
  victim    run another job (a sleeper) at the same time, passed as $victim;
            it must still be running afterwards
  profile   the seccomp profile the job's isolation record must name
  asan      False: skipped in the ASan build
  limits    the job's limits (POST /api/jobs "limits")
  net       the task has profile exec+net (no network namespace)
  ipc       the next job checks that the SysV IPC objects of $key are gone
  marker    an exec script whose unique sleep length must not run afterwards
  max_ms    the job must end within this (it may not wait for its children)
  deadline_ms  the deadline a timeout case is killed at, when not `timeout`
"""

import socket

TIMEOUT = {"timed_out": True, "signal": "SIGKILL", "exit_code": None, "oom_killed": False}
OOM = {"oom_killed": True, "timed_out": False, "exit_code": None, "seccomp_syscall": None}
EXIT0 = {"exit_code": 0, "signal": None, "timed_out": False}
OUTPUT_LIMIT = "output limit exceeded (more than 1 MiB on stdout/stderr)"
RESULT_TOO_LARGE = "result too large (more than 1 MiB)"
SEGV = "crashed: SIGSEGV (segmentation fault)"
OOM_REASON = "out of memory (limit 64 MiB)"
FORBIDDEN = "blocked by sandbox: forbidden system call"
SELF_SIGXCPU = "crashed: SIGXCPU (CPU time limit exceeded)"
# "one\ntwo\x1b[2J\u009bthree\x7f" as the task said it (attack-sandbox.md 3d).
ERROR_TEXT = "one two [2J  three "
NO_RESULT = "exited without a result"

# Contracts of issue 4 (the tags in the report).
PIDNS = "pid namespace"
NETNS = "network namespace"
IPCNS = "ipc namespace"
UTSNS = "uts namespace"
TMP = "private /tmp"
RO = "read-only root"
CONF = "config file hidden"
PG = "postgres socket dir hidden"
CGROUP = "cgroup memory limit"
UID = "uid per slot"


def timed_out(spec):
    return "timed out after %s (killed)" % spec


def blocked(name):
    return "blocked by sandbox: system call " + name


def crash(sig):
    return {"signal": sig, "exit_code": None, "timed_out": False, "seccomp_syscall": None}


def seccomp(name):
    return {"timed_out": False, "signal": "SIGSYS", "seccomp_syscall": name, "exit_code": None}


SIGSYS_UNNAMED = {"timed_out": False, "signal": "SIGSYS", "seccomp_syscall": None,
                  "exit_code": None}


def c(task, reason=None, **kw):
    return dict(kind="c", task=task, reason=reason, profile="strict", **kw)


def x(case, reason=None, **kw):
    """An exec case of hostile_exec (task hx_CASE)."""
    return dict(kind="exec", task="hx_" + case, argv=case, reason=reason, profile="exec", **kw)


def script(task, reason=None, **kw):
    """An exec case of a script in exec/ (valetd.EXEC_TASKS)."""
    return dict(kind="exec", task=task, reason=reason, profile="exec", **kw)


# --- result checks ------------------------------------------------------------
def bounded(key, low, high, err):
    def check(meta, ctx):
        n = meta.get(key)
        if not isinstance(n, int) or not low <= n <= high or meta.get("errno") != err:
            return ["expected %s in [%d, %d] and errno %s, got %s" % (key, low, high, err, meta)]
        return []
    return check


def refused_all(key=None):
    """Every value (of meta[key]) is an errno name, none is "ok"."""
    def check(meta, ctx):
        vals = meta.get(key, {}) if key else meta
        ok = [k for k, v in vals.items() if v == "ok"]
        return ["allowed: %s (all: %s)" % (ok, vals)] if ok else []
    return check


def errno_in(*names):
    def check(meta, ctx):
        if meta.get("ret") != -1 or meta.get("errno") not in names:
            return ["expected ret -1 and errno in %s, got %s" % (names, meta)]
        return []
    return check


def env_names(meta, ctx):
    names = meta.get("env")
    names = names.split() if isinstance(names, str) else names
    return ["the secret reached the task: %s" % names] if ctx["secret_env"] in names else []


def memscan(meta, ctx):
    want = {"heap": False} if ctx["asan"] else {"stack": False, "heap": False}
    if ctx["asan"]:
        # ASan keeps stack frames in "fake stacks" the task does not scan.
        meta = {k: v for k, v in meta.items() if k != "stack"}
    return [] if meta == want else ["a secret was found in the task's memory: %s" % meta]


def same_uid(meta, ctx):
    u = ctx["uid"]
    if meta.get("euid") != meta.get("ruid") or meta.get("euid") in (0, None):
        return ["the setuid bit took effect: %s" % meta]
    if u is not None and meta.get("euid") != u:
        return ["ran as %s, not the slot's uid %d" % (meta, u)]
    return []


def ids(meta, ctx):
    out = []
    u = ctx["uid"]
    zero = "0000000000000000"
    for k in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
        if meta.get(k) != zero:
            out.append("%s is %s" % (k, meta.get(k)))
    for k, v in (("NoNewPrivs", "1"), ("Seccomp", "2"), ("Groups", ""), ("tty", "ENXIO"),
                 ("core", [0, 0]), ("SigBlk", zero), ("SigIgn", zero)):
        if meta.get(k) != v:
            out.append("%s is %r, not %r" % (k, meta.get(k), v))
    uids = (meta.get("Uid") or "").split()
    if len(set(uids)) != 1 or uids[0] == "0":
        out.append("Uid is %r" % meta.get("Uid"))
    elif u is None or int(uids[0]) != u:
        out.append("[%s] runs as uid %s, not the slot's uid (isolation.uid %s)"
                   % (UID, uids[0], u))
    return out


def alone_in_pidns(meta, ctx):
    # pid 2 or more (never 1, see result_then_crash): 2 in a namespace of
    # the job's own, more in its slot's, which earlier jobs of the slot
    # entered (sbx_init.c); either way it sees the init and itself only.
    pid = meta.get("pid")
    if not isinstance(pid, int) or pid < 2 or meta.get("procs") != [1, pid] \
            or meta.get("count") != 2:
        return ["[%s] expected pid >= 2 beside the init alone, got %s" % (PIDNS, meta)]
    return []


def nodename(meta, ctx):
    # The README: host name `valet` (sbx_init.c), not merely another one.
    if meta.get("nodename") != "valet":
        host = " (the host's)" if meta.get("nodename") == socket.gethostname() else ""
        return ["[%s] the job's host name is %r%s, not 'valet'"
                % (UTSNS, meta.get("nodename"), host)]
    return []


def init_out_of_reach(meta, ctx):
    """proc_peek of pid 1, the job's init: uid 0 to the task's uid, so its
    environment, memory, mappings and fds are closed to the task (its
    cmdline and status are anyone's)."""
    want = {"environ": "EACCES", "maps": "EACCES", "mem": "EACCES", "fd": "EACCES"}
    got = {k: meta.get(k) for k in want}
    out = [] if got == want else ["the task reads its init's /proc: %s" % meta]
    if not all(isinstance(meta.get(k), int) for k in ("cmdline", "status")):
        out.append("cannot even read the init's cmdline and status: %s" % meta)
    return out


def tmp_leave(meta, ctx):
    steps = ("file", "hidden", "dir", "passwd_link", "canary_link", "fifo", "socket")
    failed = {k: meta.get(k) for k in steps if meta.get(k) != "ok"}
    # /tmp itself must be writable (a private tmpfs), or the case proves nothing.
    return ["could not write in /tmp: %s" % failed] if failed else []


def pg_socket(meta, ctx):
    # /run is an empty tmpfs in every job's view, and the test server's
    # socket directory is in the host's /tmp, which no job sees.
    want = {"run": "ENOENT", "var_run": "ENOENT"}
    if ctx["pgsock"]:
        want["connect"] = "ENOENT"
    return [] if meta == want else ["[%s] expected %s, got %s" % (PG, want, meta)]


def write_outside(meta, ctx):
    bad = {d: e for d, e in meta.items() if e != "EROFS"}
    return ["[%s] expected EROFS everywhere, got %s" % (RO, bad)] if bad else []


def unchecked(meta, ctx):
    """What counts is the host and the next job (check_clean), not the result."""
    return []


ALL_ENOENT = {"environ": "ENOENT", "cmdline": "ENOENT", "maps": "ENOENT", "mem": "ENOENT",
              "status": "ENOENT", "fd": "ENOENT"}


def eperm(**kw):
    return x(kw.pop("argv"), result={"ret": -1, "errno": "EPERM"}, **kw)


# --- in-process C tasks (strict profile: a forbidden call kills) ------------
C_CASES = {
    "spin": c("hostile_spin", timed_out("1s"), timeout=1, outcome=TIMEOUT),
    "sleep": c("hostile_sleep", timed_out("1s"), timeout=1, outcome=TIMEOUT),
    "deadlock": c("hostile_deadlock", timed_out("1s"), timeout=1, outcome=TIMEOUT),
    "sigstop": c("hostile_sigstop", timed_out("1s"), timeout=1, outcome=TIMEOUT),
    "ignore_term": c("hostile_ignore_term", timed_out("1s"), timeout=1, outcome=TIMEOUT),
    "default_timeout": c("hostile_sleep", timed_out("1.5s"), timeout=None, outcome=TIMEOUT),
    "segv": c("hostile_segv", SEGV, outcome=crash("SIGSEGV")),
    "abort": c("hostile_abort", "crashed: SIGABRT (aborted)", outcome=crash("SIGABRT")),
    "stack_overflow": c("hostile_stack", SEGV, outcome=crash("SIGSEGV")),
    "divzero": c("hostile_divzero", "crashed: SIGFPE (floating point exception)",
                 outcome=crash("SIGFPE")),
    "sigill": c("hostile_sigill", "crashed: SIGILL (illegal instruction)",
                outcome=crash("SIGILL")),
    # 1 MiB blocks with one page touched each: the address space limit
    # (RLIMIT_AS) is reached long before the memory cgroup's.
    "mallocbomb": c("hostile_mallocbomb", SEGV, outcome=crash("SIGSEGV"), asan=False,
                    timeout=20),
    "membomb": c("hostile_membomb", OOM_REASON, outcome=OOM, asan=False, timeout=20,
                 needs=CGROUP),
    "socket": c("hostile_socket", blocked("socket"), outcome=seccomp("socket")),
    "execve": c("hostile_execve", blocked("execve"), outcome=seccomp("execve")),
    "forkbomb": c("hostile_fork", blocked("clone"), outcome=seccomp("clone")),
    # glibc blocks every signal around clone3 in pthread_create, so the
    # SIGSYS reporter cannot run: the unnamed sentence is honest too.
    "threadbomb": c("hostile_thread", (blocked("clone3"), blocked("clone"), FORBIDDEN)),
    "open_shadow": c("hostile_open_shadow", blocked("openat"), outcome=seccomp("openat")),
    "kill_daemon": c("hostile_killparent", blocked("kill"), params={"pid": "$daemon"},
                     outcome=seccomp("kill")),
    "ptrace_daemon": c("hostile_ptrace", blocked("ptrace"), params={"pid": "$daemon"},
                       outcome=seccomp("ptrace")),
    "unshare_user": c("hostile_unshare", blocked("unshare"), outcome=seccomp("unshare")),
    "io_uring": c("hostile_io_uring", blocked("io_uring_setup"),
                  outcome=seccomp("io_uring_setup")),
    "perf_event": c("hostile_perf_event", blocked("perf_event_open"),
                    outcome=seccomp("perf_event_open")),
    "noresult": c("hostile_noresult", NO_RESULT, outcome=EXIT0),
    "exit3": c("hostile_exit3", "exited with status 3",
               outcome={"exit_code": 3, "signal": None, "timed_out": False}),
    "flood_stdout": c("hostile_flood", OUTPUT_LIMIT, timeout=10, outcome={"timed_out": False}),
    "flood_stderr": c("hostile_flood", OUTPUT_LIMIT, params={"fd": 2}, timeout=10,
                      outcome={"timed_out": False}),
    "bigresult": c("hostile_bigresult", RESULT_TOO_LARGE, timeout=10),
    # Forged frames on the result channel: the supervisor believes none.
    "frame_garbage": c("hostile_frame", "malformed result: unexpected frame from the task",
                       params={"kind": "garbage"}, outcome={"timed_out": False}),
    "frame_truncated": c("hostile_frame", "malformed result: truncated result frame",
                         params={"kind": "truncated"}, outcome=EXIT0),
    "frame_huge": c("hostile_frame", RESULT_TOO_LARGE, params={"kind": "huge"},
                    outcome={"timed_out": False}),
    "frame_badjson": c("hostile_frame", "malformed result: result is not valid JSON",
                       params={"kind": "badjson"}, outcome=EXIT0),
    "frame_nul": c("hostile_frame", "malformed result: result is not valid JSON",
                   params={"kind": "nul"}, outcome=EXIT0),
    "result_then_crash": c("hostile_frame", "crashed: SIGABRT (aborted)",
                           params={"kind": "result_then_crash"}, outcome=crash("SIGABRT")),
    "fake_seccomp": c("hostile_frame", NO_RESULT, params={"kind": "fake_seccomp"},
                      outcome=dict(EXIT0, seccomp_syscall=None)),
    # attack-sandbox.md 3c: a SYSCALL frame naming reboot, then socket. The
    # seccomp kill is real, the name is not: no name is given. SIGSYS
    # blocked (the kernel kills without the reporter); the reporter's true
    # frame after the lie; the filter's kill of rt_sigaction(SIGSYS), no
    # trap; a frame for every possible trap data (a job gets one guess).
    "forged_syscall": c("hostile_frame", FORBIDDEN, params={"kind": "forged_syscall"},
                        outcome=SIGSYS_UNNAMED),
    "forged_then_trap": c("hostile_frame", FORBIDDEN, params={"kind": "forged_then_trap"},
                          outcome=SIGSYS_UNNAMED),
    "forged_then_kill": c("hostile_frame", FORBIDDEN, params={"kind": "forged_then_kill"},
                          outcome=SIGSYS_UNNAMED),
    "syscall_spray": c("hostile_frame", FORBIDDEN, params={"kind": "syscall_spray"},
                       outcome=SIGSYS_UNNAMED, timeout=10),
    # 3b: the task's own SIGXCPU, not its CPU limit (the CPU time says so).
    "sigxcpu": c("hostile_frame", SELF_SIGXCPU, params={"kind": "sigxcpu"},
                 limits={"cpu": 5}, outcome=crash("SIGXCPU")),
    # 3d: its own error, control characters blanked, the rest verbatim.
    "error_text": c("hostile_frame", ERROR_TEXT, params={"kind": "error_text"},
                    outcome=EXIT0),
    "environ": c("hostile_environ", result=env_names),
    "memscan_env": c("hostile_memscan", params={"rev": "$secret_rev"}, result=memscan),
    "memscan_db": c("hostile_memscan", params={"rev": "$db_secret_rev"}, result=memscan),
}

# Raw system calls of attacks.h through hostile_syscall: each kills the task.
for _name, _sc in (("process_vm_readv", "process_vm_readv"), ("clone_user", "clone"),
                   ("setns", "setns"), ("bpf", "bpf"), ("keyctl", "keyctl"),
                   ("mount", "mount"), ("tiocsti", "ioctl"), ("personality", "personality"),
                   ("userfaultfd", "userfaultfd"), ("sethostname", "sethostname"),
                   ("mknod", "mknodat"), ("chown", "fchownat"), ("chmod", "fchmodat"),
                   ("rlimit_raise", "prlimit64"), ("shmget", "shmget")):
    C_CASES["sys_" + _name] = c("hostile_syscall", blocked(_sc), params={"call": _name},
                                outcome=seccomp(_sc))
# Foreign ABIs are killed by strict's bad-arch action, without a name.
# int80: a kernel without IA32 emulation faults first (SIGSEGV); the suite
# probes which kind this kernel is (ctx["int80"]) and expects exactly that.
C_CASES["sys_int80"] = c("hostile_syscall", "$int80_reason", params={"call": "int80"},
                         outcome="$int80_outcome")
C_CASES["sys_x32"] = c("hostile_syscall", FORBIDDEN, params={"call": "x32"},
                       outcome=SIGSYS_UNNAMED)

# --- exec tasks: hostile_exec CASE (exec profile: a denied call fails) -----
EXEC_CASES = {
    # Under ASan the daemon runs without a memory limit (RLIMIT_AS would
    # break its sanitized C-task children): these two need one.
    "membomb": x("membomb", OOM_REASON, outcome=OOM, timeout=20, needs=CGROUP, asan=False),
    "mallocbomb": x("mallocbomb", SEGV, outcome=crash("SIGSEGV"), timeout=20, asan=False),
    "stack_overflow": x("stack", SEGV, outcome=crash("SIGSEGV")),
    "forkbomb": x("forkbomb", result=bounded("forked", 1, 64, "EAGAIN"), outcome=EXIT0),
    "threadbomb": x("threadbomb", result=bounded("threads", 1, 64, "EAGAIN"), outcome=EXIT0),
    "stopped_child": x("stopped_child", result={"stopped": True}),
    "zombies": x("zombies", result={"zombies": 16}),
    "setsid_orphan": x("orphan", result={"orphan": True}),
    # A leftover that poses as an idle pre-forked child (valetd-job in a
    # pipe read): dies with the job, and idle_warm() does not excuse it.
    "disguised_child": x("disguise", result={"disguised": True}, needs=PIDNS),
    # As pid 1 of its namespace the task would be immune to its own SIGABRT
    # and to SIGXFSZ (signals with the default action): it must be pid 2.
    "result_then_crash": x("result_then_crash", "crashed: SIGABRT (aborted)",
                           outcome=crash("SIGABRT"), needs=PIDNS),
    "noresult": x("noresult", NO_RESULT, outcome=EXIT0),
    "tcp_connect": x("tcp_connect", params={"port": "$port"}, result={"socket": "EPERM"}),
    "abstract_unix": x("abstract_unix", params={"name": "$abstract"},
                       result={"socket": "ok", "connect": "ECONNREFUSED"}, needs=NETNS),
    "net_view": x("net_view", params={"port": "$port"},
                  result={"ifaces": ["lo"], "sees_port": False}, needs=NETNS),
    # The task is pid 2 or more under a tiny init, and sees nothing else.
    "proc_view": x("proc_view", result=alone_in_pidns, needs=PIDNS),
    "hostname": x("uts", result=nodename),
    # The init keeps uid 0 (without capabilities): the task can neither
    # signal it (EPERM, before the kernel's own shield of a namespace's
    # init from its members) nor look into it.
    "kill_init": x("kill_pid", params={"pid": 1}, result={"ret": -1, "errno": "EPERM"},
                   needs=UID),
    "init_proc": x("proc_peek", params={"pid": 1}, result=init_out_of_reach, needs=UID),
    "privileges": x("ids", result=ids),
    "setuid_binary": x("setuid", result=same_uid),
    "cgroup_escape": x("cgroup_escape", result=refused_all("attempts")),
    "kill_other_job": x("kill_pid", params={"pid": "$victim"}, victim=True,
                        result={"ret": -1, "errno": "ESRCH"}, needs=PIDNS),
    "kill_all": x("kill_all", victim=True, result={"ret": -1, "errno": "ESRCH"}, needs=PIDNS),
    "ptrace_other_job": eperm(argv="ptrace", params={"pid": "$victim"}, victim=True),
    "process_vm_readv": eperm(argv="process_vm_readv", params={"pid": "$victim"},
                              victim=True),
    "environ_other_job": x("proc_peek", params={"pid": "$victim"}, victim=True,
                           result=ALL_ENOENT, needs=PIDNS),
    "daemon_proc": x("proc_peek", params={"pid": "$daemon"}, result=ALL_ENOENT, needs=PIDNS),
    "read_shadow": x("read_file", result={"read": "EACCES"}),
    # The config's directory is hidden (an empty directory over it).
    "read_config": x("read_file", params={"path": "$config"}, result={"read": "ENOENT"},
                     needs=CONF),
    "pg_socket": x("pg_socket", params={"path": "$pgsock"}, result=pg_socket),
    "write_outside": x("write_outside", params={"tag": "$tag"}, result=write_outside),
    "tmp_leave": x("tmp_leave", params={"tag": "$tag", "canary": "$canary"},
                   result=tmp_leave),
    "devshm_leave": x("devshm_leave", params={"tag": "$tag"}, result=unchecked),
    "ipc_leave": x("ipc_leave", params={"key": "$key"}, result=unchecked, ipc=True),
    "file_size": x("file_size", "crashed: SIGXFSZ (file size limit exceeded)",
                   params={"tag": "$tag"}, outcome=crash("SIGXFSZ"), needs=PIDNS),
    # RLIMIT_NOFILE is 64 ([sandbox] max_files) and fds 0-2 are open.
    "fd_exhaust": x("fd_exhaust", result={"opened": 61, "errno": "EMFILE"}),
    # Foreign ABIs: ENOSYS, as any call the profile does not list; the exec
    # profiles never kill with SIGSYS (a kernel without IA32 emulation
    # faults on int 0x80 first).
    "int80": x("int80", "$x_int80_reason", outcome="$x_int80_outcome",
               result={"ret": -1, "errno": "ENOSYS"}),
    "x32": x("x32", result={"ret": -1, "errno": "ENOSYS"}),
    # attack-sandbox.md 3a, 3b: the task's own SIGSYS and SIGXCPU are
    # crashes, not the sandbox's block nor the CPU limit (pid 2: see
    # result_then_crash).
    "sigsys": x("sigsys", "crashed: SIGSYS (bad system call)", outcome=crash("SIGSYS"),
                needs=PIDNS),
    "sigxcpu": x("sigxcpu", SELF_SIGXCPU, outcome=crash("SIGXCPU"), limits={"cpu": 5},
                 needs=PIDNS),
    "error_text": x("error_text", ERROR_TEXT, outcome=EXIT0),
    # With the exec+net profile the job is on the host's network: this
    # control case shows that tcp_connect above can tell the difference.
    # exec+net: its own network namespace: 127.0.0.1 is the job's own.
    "tcp_connect_net": dict(x("tcp_connect", params={"port": "$port"},
                              result={"socket": "ok", "connect": "ECONNREFUSED"}),
                            task="hx_tcp_connect_net", profile="exec+net", net=True),
}

# Always denied in the exec profile (SANDBOX.md property 5): EPERM.
for _name in ("unshare_user", "clone_user", "setns", "io_uring", "perf_event", "bpf", "keyctl",
              "add_key", "mount", "umount", "tiocsti", "personality", "userfaultfd", "kexec",
              "init_module", "reboot", "socket_netlink", "mknod"):
    EXEC_CASES["sys_" + _name] = eperm(argv=_name)
# The kernel refuses these for lack of a capability (EPERM); the allowlist
# profile may refuse them first, as calls (or argument values) it does not
# list (ENOSYS).
EXEC_CASES["sys_sethostname"] = x("sethostname", result=errno_in("EPERM", "ENOSYS"))
EXEC_CASES["sys_rlimit_raise"] = x("rlimit_raise", result=errno_in("EPERM", "ENOSYS"))
# /etc/passwd belongs to root (EPERM) and sits on a read-only mount (EROFS):
# which one the kernel reports depends on which check it makes first.
EXEC_CASES["sys_chown"] = x("chown", result=errno_in("EPERM", "EROFS"))
EXEC_CASES["sys_chmod"] = x("chmod", result=errno_in("EPERM", "EROFS"))

# --- exec scripts in exec/ ------------------------------------------------------
SCRIPT_CASES = {
    "sleep": script("exec_sleep", timed_out("1s"), timeout=1, outcome=TIMEOUT,
                    marker="exec_sleep"),
    "spin": script("exec_spin", timed_out("1s"), timeout=1, outcome=TIMEOUT),
    "task_timeout": script("exec_sleep_500ms", timed_out("500ms"), timeout=None,
                           outcome=TIMEOUT, marker="exec_sleep_500ms", deadline_ms=500),
    "many_children": script("exec_many_children", timed_out("2s"), timeout=2, outcome=TIMEOUT,
                            marker="exec_many_children"),
    # An exec task's stdout is its result, so a stdout flood hits the result cap.
    "flood": script("exec_flood", RESULT_TOO_LARGE, timeout=10, outcome={"timed_out": False}),
    "flood_stderr": script("exec_flood_stderr", OUTPUT_LIMIT, timeout=10,
                           outcome={"timed_out": False}),
    "exit3": script("exec_exit3", "exited with status 3: bad thing happened",
                    outcome={"exit_code": 3, "signal": None}),
    "leave_child": script("exec_leave_child", result={}, marker="exec_leave_child",
                          max_ms=3000),
    "leave_orphan": script("exec_orphan", result={}, marker="exec_orphan", max_ms=3000),
    # 0 1 2 and the directory fd of ls itself: nothing of the daemon's.
    "fds": script("exec_fds", result=lambda m, ctx: [] if sorted(
        int(f) for f in m.get("fds", "").split()) == [0, 1, 2, 3] else ["open fds: %s" % m]),
    "env": script("exec_env", result=env_names),
    "scratch": script("exec_scratch", result={"found": False}),
}

CASES = {}
for _prefix, _table in (("c", C_CASES), ("x", EXEC_CASES), ("sh", SCRIPT_CASES)):
    for _id, _case in _table.items():
        CASES["%s_%s" % (_prefix, _id)] = _case
