"""The README's task examples, built and run as a reader would.

Theory of operation: the C and Python code blocks of the README's "Writing
tasks" section are extracted as they are, the C ones compiled against this
build's libvalet.a and include/valet.h (the same flags `pkg-config valet`
gives an installed copy), and each runs a job through a real daemon. So
the README cannot drift from what works. The own-main program links
libvalet and jansson only, as the README says: it execs this build's
valetd (VALET_DAEMON) and is that daemon's spawner.
"""
import os
import re
import shlex
import subprocess
import unittest

import valetd
from valetd import ASAN, BUILD, REPO

README = os.path.join(REPO, "README.md")


def readme_blocks(lang):
    with open(README) as f:
        text = f.read()
    section = text.split("## Writing tasks", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```%s\n(.*?)```" % lang, section, re.S)


def pkg_flags(kind, *pkgs):
    out = subprocess.run(["pkg-config", kind] + list(pkgs), check=True,
                         capture_output=True, text=True).stdout
    return shlex.split(out)


def compile_c(source, output, shared):
    cflags = ["-std=gnu11", "-Wall", "-Werror", "-I", os.path.join(REPO, "include")]
    cflags += pkg_flags("--cflags", "jansson")
    if ASAN:
        cflags += ["-fsanitize=address,undefined"]
    if shared:
        cmd = ["cc", "-shared", "-fPIC"] + cflags + [source, "-o", output]
    else:
        libs = [os.path.join(BUILD, "libvalet.a")]
        libs += pkg_flags("--libs", "jansson") + ["-pthread"]
        # Linked statically here, so export valet_* for plugins the way the
        # shared libvalet.so would provide them.
        libs += ["-rdynamic"]
        cmd = ["cc"] + cflags + [source, "-o", output] + libs
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError("cannot compile the README example:\n%s\n%s"
                             % (" ".join(cmd), r.stderr))


class ReadmeExamples(unittest.TestCase):
    def setUp(self):
        # Not under /tmp: every job has its own, without the host's files.
        build = os.path.abspath(os.environ.get("BUILD", "build"))
        self.tmp = valetd.scratch_dir("valet-examples-", build)
        self.blocks = readme_blocks("c")
        self.assertEqual(len(self.blocks), 2, "expected the own-main and plugin examples")

    def run_job(self, daemon, task, params):
        daemon.start()
        try:
            job = daemon.submit(task, params)
            done = daemon.wait_all([job["id"]], timeout=20, check_status=False)[job["id"]]
            return done, daemon.result(job["id"])
        finally:
            daemon.stop()
            daemon.cleanup()

    def test_own_main(self):
        src = os.path.join(self.tmp, "mytasks.c")
        with open(src, "w") as f:
            f.write(self.blocks[0])
        binary = os.path.join(self.tmp, "mytasks")
        compile_c(src, binary, shared=False)
        env = {"VALET_DAEMON": os.path.abspath(valetd.VALETD)}
        d = valetd.Daemon(binary=binary, env=env)
        done, result = self.run_job(d, "add", {"a": 1, "b": 2})
        self.assertEqual(done["status"], "COMPLETED", done)
        self.assertEqual(result["metadata"], {"sum": 3})

        d = valetd.Daemon(binary=binary, env=env)
        done, result = self.run_job(d, "add", {"a": "x"})
        self.assertEqual(done["status"], "FAILED", done)
        self.assertTrue(done["failure_reason"].startswith("invalid task_params: "), done)

    def test_plugin(self):
        plugins = os.path.join(self.tmp, "plugins")
        os.makedirs(plugins)
        src = os.path.join(self.tmp, "hello.c")
        with open(src, "w") as f:
            f.write(self.blocks[1])
        compile_c(src, os.path.join(plugins, "hello.so"), shared=True)
        d = valetd.Daemon(overrides={"tasks": {"plugin_dir": plugins}})
        done, result = self.run_job(d, "hello", {"who": "valet"})
        self.assertEqual(done["status"], "COMPLETED", done)
        self.assertEqual(result["metadata"], {"greeting": "hello, valet"})

    def test_exec_task(self):
        (script,) = readme_blocks("python")
        path = os.path.join(self.tmp, "wordcount.py")
        with open(path, "w") as f:
            f.write(script)
        os.chmod(self.tmp, 0o755)
        os.chmod(path, 0o755)
        d = valetd.Daemon(overrides={"task.wc": {"command": "/usr/bin/python3 " + path}})
        done, result = self.run_job(d, "wc", {"text": "one two\nthree"})
        self.assertEqual(done["status"], "COMPLETED", done)
        self.assertEqual(result["metadata"], {"words": 3, "lines": 2})

        d = valetd.Daemon(overrides={"task.wc": {"command": "/usr/bin/python3 " + path}})
        done, result = self.run_job(d, "wc", {"text": 5})
        self.assertEqual(done["status"], "FAILED", done)
        self.assertEqual(done["failure_reason"], "params.text must be a string")


if __name__ == "__main__":
    unittest.main()
