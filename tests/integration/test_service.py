"""valetd under a service manager: readiness (sd_notify) and SIGHUP reload.

Theory of operation: the test plays systemd. It binds an AF_UNIX datagram
socket, passes it as NOTIFY_SOCKET and reads what valetd reports; it
rewrites the config file and sends SIGHUP as `systemctl reload` would.
"""
import os
import signal
import socket
import tempfile
import time
import unittest

from valetd import Daemon


class NotifyTest(unittest.TestCase):
    def test_ready_reloading_stopping(self):
        tmp = tempfile.mkdtemp(prefix="valet-notify-")
        path = os.path.join(tmp, "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(5)
        d = Daemon(env={"NOTIFY_SOCKET": path}).start()
        try:
            # READY=1 comes once the API answers (start() already saw 200).
            self.assertIn("READY=1", sock.recv(4096).decode())
            d.proc.send_signal(signal.SIGHUP)
            self.assertIn("RELOADING=1", sock.recv(4096).decode())
            self.assertIn("READY=1", sock.recv(4096).decode())
            d.proc.send_signal(signal.SIGTERM)
            self.assertIn("STOPPING=1", sock.recv(4096).decode())
            rc = d.proc.wait(timeout=10)
            self.assertEqual(rc, 0)
        finally:
            sock.close()
            d.kill()
            d.cleanup()


class ReloadTest(unittest.TestCase):
    def setUp(self):
        self.d = Daemon({"jobs": {"default_timeout": "10s"}}).start()

    def tearDown(self):
        self.d.stop()
        self.d.cleanup()

    def hup_and_wait(self, text):
        offset = self.d.log_size()
        self.d.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while text not in self.d.log_text()[offset:]:
            if time.monotonic() > deadline:
                self.fail("no %r in the log after SIGHUP:\n%s" % (text, self.d.log_tail()))
            time.sleep(0.02)
        return self.d.log_text()[offset:]

    def test_reloadable_key_applies(self):
        self.d.overrides.setdefault("jobs", {})["default_timeout"] = "1s"
        self.d.write_config()
        self.hup_and_wait("configuration reloaded")
        job = self.d.submit("sleep", {"seconds": 30})
        done = self.d.wait_for(job["id"], timeout=5)
        self.assertEqual(done["failure_reason"], "timed out after 1s (killed)", done)

    def test_bad_file_changes_nothing(self):
        # The bad file changes a reloadable value ahead of its error: no
        # part of it may apply (issue 14: a bad file that changed no value
        # could not tell "nothing applied" from "applied up to the error").
        self.d.overrides.setdefault("jobs", {})["default_timeout"] = "1s"
        self.d.write_config()
        with open(self.d.conf_path, "a") as f:
            f.write("\n[queue]\nwrokers = 3\n")
        self.hup_and_wait("reload failed")
        self.assertTrue(self.d.alive())
        job = self.d.submit("sleep", {"seconds": 0.2})
        done = self.d.wait_for(job["id"], timeout=5)
        self.assertEqual(done["status"], "COMPLETED", done)
        self.assertEqual(done["timeout"], 10)

    def test_task_command_change_is_reported(self):
        """A [task.NAME] whose command changed is named in the log (so is
        one added and one removed), and its jobs keep running the old
        command: the spawner has its own copy of the task table."""
        new = "/bin/sh -c 'cat >/dev/null; echo \"{\\\"new\\\": true}\"'"
        self.d.overrides["task.exec_ok"] = {"command": new}
        self.d.overrides["task.exec_added"] = {"command": new}
        self.d.write_config()
        # And no [task.exec_env] section at all (write_config() separates
        # sections with an empty line).
        with open(self.d.conf_path) as f:
            text = f.read()
        text = "\n\n".join(sec for sec in text.split("\n\n")
                           if not sec.startswith("[task.exec_env]\n"))
        with open(self.d.conf_path, "w") as f:
            f.write(text)
        self.assertIn("[task.exec_ok]\ncommand = %s\n" % new, text)
        self.assertNotIn("[task.exec_env]", text)
        log = self.hup_and_wait("configuration reloaded")
        self.assertIn('configuration changed but needs a restart to apply '
                      'key="[task.exec_ok] command"\n', log)
        self.assertIn('key=[task.exec_added] change="task added"', log)
        self.assertIn('key=[task.exec_env] change="task removed"', log)
        # Only the tasks that changed are named.
        self.assertNotIn("[task.exec_error]", log)
        job = self.d.submit("exec_ok")
        done = self.d.wait_for(job["id"], timeout=10)
        self.assertEqual(done["status"], "COMPLETED", done)
        meta = self.d.result(job["id"])["metadata"]
        self.assertIs(meta.get("ok"), True, meta)  # ok.sh's, not {"new": true}
        self.assertNotIn("new", meta)

    def test_restart_only_key_is_reported(self):
        self.d.overrides.setdefault("queue", {})["workers"] = "3"
        self.d.write_config()
        log = self.hup_and_wait("configuration reloaded")
        self.assertIn("needs a restart", log)
        self.assertIn("[queue] workers", log)


if __name__ == "__main__":
    unittest.main()
