"""The source layout's rules, read from the tree and the build.

Theory of operation: the folders follow the processes (README, "Source
layout"). sandbox/ is the spawner and the job child, and knows nothing of
the daemon; supervisor/ is the daemon's core, and only its composition root
(main.c) knows the adapters (storage/) and the driver (api/). These tests
read every #include of the tree, the README's layout tour (every source
file is in it, and nothing that is gone), and what the built programs link
(the spawner: libc and jansson; valetd: its libraries, no dlopen() tables).
"""
import os
import re
import subprocess
import unittest

from valetd import BUILD, REPO

INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
SOURCES = ("sandbox", "supervisor", "api", "storage")


def sources(folder):
    top = os.path.join(REPO, folder)
    for dirpath, _, files in os.walk(top):
        for name in sorted(files):
            if name.endswith((".c", ".h")):
                yield os.path.relpath(os.path.join(dirpath, name), REPO)


def includes(path):
    """The folders (sandbox, supervisor, ...) of the local headers path includes."""
    with open(os.path.join(REPO, path)) as f:
        text = f.read()
    here = os.path.dirname(path)
    out = set()
    for inc in INCLUDE_RE.findall(text):
        target = os.path.normpath(os.path.join(here, inc))
        out.add((target.split(os.sep)[0], inc))
    return out


def needed(binary):
    out = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True,
                         check=True).stdout
    return sorted(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out))


class LayoutTest(unittest.TestCase):
    def test_sandbox_knows_nothing_of_the_daemon(self):
        bad = ["%s includes %s" % (path, inc)
               for path in sources("sandbox")
               for folder, inc in includes(path) if folder in ("supervisor", "api", "storage")]
        self.assertEqual(bad, [])

    def test_only_main_knows_the_adapters(self):
        bad = ["%s includes %s" % (path, inc)
               for path in sources("supervisor") if path != "supervisor/main.c"
               for folder, inc in includes(path) if folder in ("api", "storage")]
        self.assertEqual(bad, [])

    def test_the_daemon_knows_only_the_protocol_of_sandbox(self):
        """supervisor/, api/ and storage/ include of sandbox/ only the
        protocol (spawn_proto.h), the frame format and the cgroup slot's
        fds that the daemon opens for the spawner."""
        allowed = {"sandbox/spawn_proto.h", "sandbox/frame.h", "sandbox/cg_slot.h"}
        bad = []
        for folder in ("supervisor", "api", "storage"):
            for path in sources(folder):
                for inc_folder, inc in includes(path):
                    target = os.path.normpath(os.path.join(os.path.dirname(path), inc))
                    if inc_folder == "sandbox" and target not in allowed:
                        bad.append("%s includes %s" % (path, inc))
        self.assertEqual(bad, [])

    def test_the_cli_knows_nothing_of_the_daemon(self):
        """api/cli/ (the valet client) includes only its own headers: it is
        the other side of the HTTP API, not a part of valetd."""
        bad = ["%s includes %s" % (path, inc)
               for path in sources("api/cli")
               for folder, inc in includes(path)
               if not os.path.normpath(os.path.join(os.path.dirname(path), inc))
               .startswith("api/cli/")]
        self.assertEqual(bad, [])

    def test_readme_tours_every_source_file(self):
        with open(os.path.join(REPO, "README.md")) as f:
            readme = f.read()
        tour = readme.split("## Source layout", 1)[1].split("\n## ", 1)[0]
        listed = set(re.findall(r"^((?:sandbox|supervisor|api|storage)/[\w./*]+)", tour, re.M))
        files = [p for folder in SOURCES for p in sources(folder) if p.endswith(".c")]
        missing = []
        for path in files:
            stem = os.path.basename(path)
            covered = any(path == entry or
                          (entry.endswith("/") and path.startswith(entry)) or
                          ("*" in entry and re.fullmatch(entry.replace(".", r"\.")
                                                         .replace("*", ".*"), path))
                          for entry in listed)
            covered = covered or ("%s," % stem) in tour or ("%s " % stem) in tour
            if not covered:
                missing.append(path)
        self.assertEqual(missing, [], "source files the README's layout tour does not name")
        gone = sorted(e for e in listed
                      if not e.endswith("/") and "*" not in e
                      and not os.path.exists(os.path.join(REPO, e)))
        self.assertEqual(gone, [], "the tour names files that do not exist")

    def test_spawner_links_libc_and_jansson_only(self):
        """The dynamic loader counts for nothing: it is in every dynamic
        process, and the spawner names it for glibc's rseq registration
        (__rseq_size, __rseq_offset), which it gives up."""
        spawner = os.path.join(BUILD, "valet-spawner")
        libs = [lib for lib in needed(spawner)
                if not lib.startswith(("libasan", "libubsan", "ld-linux"))]
        self.assertEqual([re.sub(r"\.so.*", "", lib) for lib in libs], ["libc", "libjansson"])

    def test_valetd_links_its_libraries(self):
        libs = {re.sub(r"\.so.*", "", lib) for lib in needed(os.path.join(BUILD, "valetd"))}
        for lib in ("libev", "libhttp_parser", "libgnutls", "libpq", "libinih", "libseccomp", "libjansson"):
            self.assertIn(lib, libs)

    def test_cli_links_libcurl_and_jansson_only(self):
        libs = [re.sub(r"\.so.*", "", lib) for lib in needed(os.path.join(BUILD, "valet"))
                if not lib.startswith(("libasan", "libubsan"))]
        # Debian's GnuTLS flavour is libcurl-gnutls; another distribution's libcurl.
        self.assertEqual(sorted("libcurl" if lib.startswith("libcurl") else lib for lib in libs),
                         ["libc", "libcurl", "libjansson"])
        daemon = {re.sub(r"\.so.*", "", lib) for lib in needed(os.path.join(BUILD, "valetd"))}
        self.assertFalse({lib for lib in daemon if lib.startswith("libcurl")}, daemon)

    def test_no_dlopen_but_the_plugin_loader(self):
        users = []
        for folder in SOURCES:
            for path in sources(folder):
                with open(os.path.join(REPO, path)) as f:
                    code = re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)
                if re.search(r"\bdlopen\s*\(", code):
                    users.append(path)
        self.assertEqual(users, ["sandbox/registry.c"])

    def test_every_mutant_applies(self):
        """Each patch of tests/mutants applies to this tree: a change that
        moves the code a mutant breaks must carry the mutant along (a patch
        that no longer applies is BROKEN, found only by `make mutants`)."""
        top = os.path.join(REPO, "tests", "mutants")
        stale = []
        for name in sorted(os.listdir(top)):
            if name.endswith(".patch"):
                check = subprocess.run(["git", "apply", "--check", os.path.join(top, name)],
                                       cwd=REPO, capture_output=True, text=True)
                if check.returncode:
                    stale.append("%s: %s" % (name, check.stderr.strip()))
        self.assertEqual(stale, [])


class DevConfigTest(unittest.TestCase):
    """README, Security model: `make run` uses packaging/valetd-dev.conf, a
    config that allows degraded isolation, so that it works for a user who
    is not root."""

    def test_make_run_degrades(self):
        with open(os.path.join(REPO, "Makefile")) as f:
            run = re.search(r"^run:.*\n((?:\t.*\n)+)", f.read(), re.M)
        self.assertIsNotNone(run, "no run target in the Makefile")
        self.assertIn("-c packaging/valetd-dev.conf", run.group(1))
        with open(os.path.join(REPO, "packaging", "valetd-dev.conf")) as f:
            self.assertRegex(f.read(), r"(?m)^allow_degraded_isolation\s*=\s*true\s*$")


if __name__ == "__main__":
    unittest.main()
