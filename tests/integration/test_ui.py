"""The web dashboard at /ui/ (api/ui.c, api/ui/), in a real headless browser.

Theory of operation: UiFilesTest reads the files over plain HTTP (types,
ETag and 304, the security headers, what is not a file). The browser tests
drive Debian's chromium through chromium-driver with python3-selenium,
against a real valetd: the page shows what the API has, live, and its
buttons do what they say. After each browser test the browser's console
log is read: any error in it fails the test. Screenshots go to
$BUILD/ui-screenshots/ (the README's come from there).

python3-selenium is Debian's: when the python3 running this is not
Debian's (pyenv, a venv), Debian's package directory is added at the end
of sys.path, after this interpreter's own.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

from valetd import BUILD, REPO, VALETD, DaemonTestCase

try:
    import selenium  # noqa: F401
except ImportError:
    sys.path.append("/usr/lib/python3/dist-packages")
try:
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait
    SELENIUM_ERROR = None
except ImportError as e:
    SELENIUM_ERROR = str(e)

SHOTS = os.path.join(BUILD, "ui-screenshots")
WAIT = 30  # seconds: the page polls every 2 s; a loaded machine is slow
# What a page with a script of the attacker's would do: a test reads it back.
XSS_NAME = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
XSS_PARAMS = {"html": "<img src=x onerror=window.__xss=3>",
              "<b onmouseover=window.__xss=4>k</b>": "</pre><script>window.__xss=5</script>"}


def key_cmd(path, *args):
    r = subprocess.run([VALETD, "--file", path, "key"] + list(args), capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def browser():
    """A headless chromium with its console log kept."""
    if SELENIUM_ERROR:
        raise AssertionError("python3-selenium is missing (packaging/deps.sh --test): "
                             + SELENIUM_ERROR)
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    driver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    for path, pkg in ((chromium, "chromium"), (driver, "chromium-driver")):
        if not os.access(path, os.X_OK):
            raise AssertionError("%s not found: install %s (packaging/deps.sh --test)"
                                 % (path, pkg))
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    profile = tempfile.mkdtemp(prefix="valet-ui-chromium-")
    for arg in ("--headless=new", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1360,900", "--no-first-run", "--disable-extensions",
                "--disable-background-networking", "--disable-sync",
                "--user-data-dir=" + profile):
        opts.add_argument(arg)
    if os.geteuid() == 0:
        opts.add_argument("--no-sandbox")  # chromium's own sandbox refuses root
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(driver), options=opts)
    d.set_page_load_timeout(WAIT)
    d.valet_profile = profile
    return d


class BrowserTestCase(DaemonTestCase):
    """A daemon and a browser per class; the console checked after each test."""

    allowed_console = ()  # substrings of console errors a test expects

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.b = browser()
        except BaseException:
            super().tearDownClass()
            raise
        cls.base = "http://127.0.0.1:%d/ui/" % cls.d.port
        os.makedirs(SHOTS, exist_ok=True)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.b.quit()
            shutil.rmtree(cls.b.valet_profile, ignore_errors=True)
        finally:
            super().tearDownClass()

    def setUp(self):
        self.b.get_log("browser")  # what earlier tests left
        self.expect_console = []

    def tearDown(self):
        errors = [e["message"] for e in self.b.get_log("browser") if e["level"] == "SEVERE"]
        errors = [m for m in errors if not any(a in m for a in self.expect_console)]
        self.assertEqual(errors, [], "errors in the browser's console")

    def open(self, fragment="#/jobs"):
        self.b.get(self.base + fragment)
        self.wait_css("#live.on")

    def wait(self, what, cond, timeout=WAIT):
        # The page re-renders what it shows: an element found one moment
        # may be gone the next (stale); the condition is then asked again.
        try:
            return WebDriverWait(self.b, timeout, poll_frequency=0.1,
                                 ignored_exceptions=(StaleElementReferenceException,)
                                 ).until(lambda b: cond())
        except TimeoutException:
            self.shot("timeout-" + self.id().rsplit(".", 1)[-1])
            raise AssertionError("the page did not show %s within %ds" % (what, timeout))

    def wait_css(self, css, timeout=WAIT):
        return self.wait(css, lambda: self.b.find_elements(By.CSS_SELECTOR, css), timeout)[0]

    def row(self, job_id):
        return self.wait_css('#jobs-table tr[data-id="%s"]' % job_id)

    def detail_status(self, status):
        return self.wait_css('#job-detail[data-status="%s"]' % status)

    def shot(self, name):
        self.b.save_screenshot(os.path.join(SHOTS, name + ".png"))

    def rows(self):
        return self.b.find_elements(By.CSS_SELECTOR, "#jobs-table tbody tr[data-id]")


class UiFilesTest(DaemonTestCase):
    def test_files_types_and_policy(self):
        for path, ctype in (("/ui/", "text/html; charset=utf-8"),
                            ("/ui/index.html", "text/html; charset=utf-8"),
                            ("/ui/app.js", "text/javascript; charset=utf-8"),
                            ("/ui/app.css", "text/css; charset=utf-8"),
                            ("/ui/favicon.svg", "image/svg+xml")):
            r = self.d.get(path)
            self.assertEqual(r.status, 200, path)
            self.assertEqual(r.header("content-type"), ctype, path)
            self.assertGreater(len(r.body), 100, path)
            csp = r.header("content-security-policy")
            for rule in ("default-src 'none'", "script-src 'self'", "connect-src 'self'",
                         "frame-ancestors 'none'", "form-action 'none'", "base-uri 'none'"):
                self.assertIn(rule, csp, path)
            self.assertNotIn("unsafe", csp)
            self.assertEqual(r.header("x-content-type-options"), "nosniff")
            self.assertEqual(r.header("x-frame-options"), "DENY")
            self.assertEqual(r.header("cache-control"), "no-cache")
            self.assertRegex(r.header("etag"), r'^"[0-9a-f]{20}"$')
        with open(os.path.join(REPO, "api", "ui", "app.js"), "rb") as f:
            self.assertEqual(self.d.get("/ui/app.js").body, f.read())

    def test_etag_revalidation(self):
        r = self.d.get("/ui/app.css")
        etag = r.header("etag")
        for inm in (etag, "W/" + etag, '"x", ' + etag, "*"):
            r2 = self.d.get("/ui/app.css", headers={"If-None-Match": inm})
            self.assertEqual(r2.status, 304, inm)
            self.assertEqual(r2.body, b"")
            self.assertEqual(r2.header("etag"), etag)
        for inm in ('"x"', etag[:-2] + '"', self.d.get("/ui/app.js").header("etag")):
            self.assertEqual(self.d.get("/ui/app.css", headers={"If-None-Match": inm}).status,
                             200, inm)
        # The header twice: neither counts (as Origin and Authorization).
        with socket.create_connection(("127.0.0.1", self.d.port), timeout=10) as sock:
            sock.sendall(("GET /ui/app.css HTTP/1.1\r\nHost: 127.0.0.1\r\nIf-None-Match: %s\r\n"
                          "If-None-Match: , \"x\"\r\nConnection: close\r\n\r\n"
                          % etag).encode())
            answer = b""
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 "), answer[:100])

    def test_not_files(self):
        r = self.d.get("/ui")
        self.assertEqual(r.status, 308)
        self.assertEqual(r.header("location"), "/ui/")
        for path in ("/ui/nope.js", "/ui/../api/status", "/ui/ui.c", "/ui/embed.sh",
                     "/ui/app.js/x", "/uix", "/ui%2Fapp.js"):
            self.assertError(self.d.get(path), 404)
        self.assertError(self.d.post("/ui/", {}), 404)
        r = self.d.client.request("HEAD", "/ui/app.js")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"")


class DashboardTest(BrowserTestCase):
    config = {"queue": {"workers": 2}}

    def test_1_pages_load(self):
        self.d.submit("dummytask", {"n": 1}, name="first")
        self.open()
        self.wait_css("#counts .card")
        self.assertEqual(self.b.find_element(By.ID, "health").text, "healthy")
        self.b.find_element(By.CSS_SELECTOR, 'nav a[data-tab="pipelines"]').click()
        self.wait_css("#pipelines-table")
        self.b.find_element(By.CSS_SELECTOR, 'nav a[data-tab="jobs"]').click()
        self.wait_css("#jobs-table")

    def test_polls_every_2s_only_while_visible(self):
        """Hidden as a poll starts (it finishes, no other follows) and as one
        has just ended (the next one never comes); visible: every 2 s."""
        self.open()
        # Each poll starts with GET /api/status (the page's module calls the
        # global fetch) and ends by writing #live. The tab is "hidden" at
        # one of those moments, from inside the page.
        self.b.execute_script("""
            window.__polls = 0;
            window.__hideAt = null;
            window.__show = (hidden) => {
                Object.defineProperty(document, "hidden", {value: hidden, configurable: true});
                document.dispatchEvent(new Event("visibilitychange"));
            };
            const real = window.fetch;
            window.fetch = (p, ...a) => {
                if (p === "/api/status") {
                    window.__polls++;
                    if (window.__hideAt === "start") { window.__hideAt = null; __show(true); }
                }
                return real(p, ...a);
            };
            new MutationObserver(() => {
                if (window.__hideAt === "end") { window.__hideAt = null; __show(true); }
            }).observe(document.getElementById("live"), {childList: true, characterData: true,
                                                        subtree: true});""")
        polls = lambda: self.b.execute_script("return window.__polls")
        self.wait("a poll", lambda: polls() > 0, 10)
        for moment in ("start", "end"):
            self.b.execute_script("window.__hideAt = arguments[0]", moment)
            self.wait_css("#live.paused")
            time.sleep(0.5)
            n = polls()
            time.sleep(5)
            self.assertEqual(polls(), n, "the page polled while hidden (hidden at a poll's %s)"
                             % moment)
            self.b.execute_script("__show(false)")
            self.wait_css("#live.on")
            self.wait("a poll at once", lambda: polls() > n, 3)
        # Visible: a poll every 2 s (3 to 5 in 8 s, whatever the machine's load).
        n = polls()
        time.sleep(8)
        self.assertGreaterEqual(polls() - n, 3)
        self.assertLessEqual(polls() - n, 5)

    def test_job_shows_up_and_opens(self):
        self.open()
        job = self.d.submit("dummytask", {"greeting": "hello from the test"}, name="shows-up")
        self.row(job["id"]).click()
        self.detail_status("COMPLETED")
        self.assertIn("hello from the test", self.b.find_element(By.ID, "params").text)
        self.wait_css("#result")
        self.assertIn("hello from the test", self.b.find_element(By.ID, "result").text)
        page = self.b.find_element(By.ID, "main").text.lower()
        for text in ("outcome", "isolation", "exit code", "namespaces", "dummytask", job["id"]):
            self.assertIn(text, page)
        self.assertNotIn("undefined", page)

    def test_cancel(self):
        job = self.d.submit("sleep", {"seconds": 120}, name="to-cancel", timeout=300)
        self.d.wait_for(job["id"], "IN_PROGRESS")
        self.open("#/jobs/" + job["id"])
        self.detail_status("IN_PROGRESS")
        self.shot("job-running")
        self.b.find_element(By.CSS_SELECTOR, '#job-detail button[data-action="cancel"]').click()
        self.detail_status("CANCELLED")
        self.assertEqual(self.d.job(job["id"])["status"], "CANCELLED")
        self.assertIn("cancelled by request", self.b.find_element(By.ID, "failure-reason").text)
        self.assertFalse(self.b.find_elements(By.CSS_SELECTOR,
                                              '#job-detail button[data-action="cancel"]'))

    def test_cancel_from_the_list(self):
        job = self.d.submit("sleep", {"seconds": 120}, name="to-cancel-2", timeout=300)
        self.open("#/jobs?status=IN_PROGRESS")
        self.d.wait_for(job["id"], "IN_PROGRESS")
        self.row(job["id"]).find_element(By.CSS_SELECTOR, 'button[data-action="cancel"]').click()
        self.d.wait_for(job["id"], "CANCELLED")
        self.wait("the row gone from IN_PROGRESS",
                  lambda: not self.b.find_elements(By.CSS_SELECTOR,
                                                   '#jobs-table tr[data-id="%s"]' % job["id"]))

    def test_resubmit(self):
        old = self.d.submit("sha256", {"data": "abc"}, name="again", timeout=7)
        self.d.wait_for(old["id"])
        self.open("#/jobs/" + old["id"])
        self.detail_status("COMPLETED")
        self.b.find_element(By.CSS_SELECTOR, '#job-detail button[data-action="resubmit"]').click()
        new_id = self.wait("the new job", lambda: (
            self.b.find_element(By.ID, "job-detail").get_attribute("data-id")
            if self.b.find_elements(By.ID, "job-detail") and
            self.b.find_element(By.ID, "job-detail").get_attribute("data-id") != old["id"]
            else None))
        self.assertTrue(self.b.current_url.endswith("#/jobs/" + new_id))
        new = self.d.wait_for(new_id)
        for key in ("name", "task_name", "task_params", "timeout"):
            self.assertEqual(new[key], old[key], key)
        self.assertEqual(new["status"], "COMPLETED")
        self.assertEqual(self.d.result(new_id)["metadata"], self.d.result(old["id"])["metadata"])

    def test_filters(self):
        failed = self.d.submit("failtask", {"message": "it broke"}, name="filter-fail")
        ok = self.d.submit("sha256", {"data": "x"}, name="filter-ok")
        self.d.wait_all([failed["id"], ok["id"]])
        self.open()
        self.row(ok["id"])
        Select(self.b.find_element(By.ID, "filter-status")).select_by_value("FAILED")
        self.wait("only failed jobs", lambda: self.b.current_url.endswith("status=FAILED") and
                  self.b.find_elements(By.CSS_SELECTOR, '#jobs-table tr[data-id="%s"]'
                                       % failed["id"]))
        self.assertEqual({r.get_attribute("data-status") for r in self.rows()}, {"FAILED"})
        self.assertEqual(self.b.find_element(By.CSS_SELECTOR, '#counts .card.active')
                         .get_attribute("data-status"), "FAILED")
        self.b.find_element(By.CSS_SELECTOR, "a.clear").click()
        self.row(ok["id"])
        Select(self.wait_css("#filter-task")).select_by_value("sha256")
        self.wait("only sha256 jobs", lambda: "task=sha256" in self.b.current_url and
                  self.b.find_elements(By.CSS_SELECTOR, '#jobs-table tr[data-id="%s"]' % ok["id"]))
        tasks = {r.find_elements(By.TAG_NAME, "td")[1].text for r in self.rows()}
        self.assertEqual(tasks, {"sha256"})
        self.assertFalse(self.b.find_elements(By.CSS_SELECTOR,
                                              '#jobs-table tr[data-id="%s"]' % failed["id"]))
        self.shot("jobs-filtered")

    def test_paging(self):
        ids = [self.d.submit("dummytask", {"i": i}, name="page-%d" % i)["id"] for i in range(60)]
        self.d.wait_all(ids, timeout=60)
        self.open("#/jobs?task=dummytask")
        self.open("#/jobs")
        self.row(ids[-1])
        self.assertEqual(len(self.rows()), 50)
        self.assertFalse(self.b.find_elements(By.CSS_SELECTOR, 'tr[data-id="%s"]' % ids[0]))
        total = len(self.d.get_json("/api/jobs")["jobs"])
        pager = self.b.find_element(By.CSS_SELECTOR, ".pager span").text
        self.assertEqual(pager, "%d–%d of %d" % (total - 49, total, total))
        self.b.find_element(By.ID, "page-older").click()
        self.row(ids[0])
        self.assertEqual(len(self.rows()), total - 50)

    def test_pipeline(self):
        p = self.d.submit_pipeline([
            {"name": "p-first", "task_name": "dummytask", "task_params": {"n": 42}},
            {"name": "p-second", "task_name": "echoprev", "use_previous_results": True}],
            name="a-pipeline")
        self.d.wait_pipeline(p["id"])
        self.open("#/pipelines")
        self.wait_css('#pipelines-table tr[data-id="%s"]' % p["id"]).click()
        self.wait_css('#pipeline-detail[data-status="COMPLETED"]')
        names = [r.find_element(By.CSS_SELECTOR, "td.name").text for r in self.rows()]
        self.assertEqual(names, ["p-first", "p-second"])
        self.shot("pipeline-jobs")
        self.rows()[1].click()
        self.detail_status("COMPLETED")
        self.assertIn("42", self.b.find_element(By.ID, "result").text)
        self.assertFalse(self.b.find_elements(By.CSS_SELECTOR, 'button[data-action="resubmit"]'))

    def test_xss_probe(self):
        """A job's name and params are whoever submitted it's: shown as text,
        never run."""
        job = self.d.submit("dummytask", XSS_PARAMS, name=XSS_NAME)
        self.d.wait_for(job["id"])
        self.open()
        row = self.row(job["id"])
        self.assertEqual(row.find_element(By.CSS_SELECTOR, "td.name").text, XSS_NAME)
        row.click()
        self.detail_status("COMPLETED")
        self.assertEqual(self.b.find_element(By.CSS_SELECTOR, "#job-detail h1").text, XSS_NAME)
        shown = json.loads(self.b.find_element(By.CSS_SELECTOR, "#params pre").text)
        self.assertEqual(shown, XSS_PARAMS)
        time.sleep(2.5)  # a poll more: redrawn, still text
        self.assertIsNone(self.b.execute_script("return window.__xss"))
        self.assertEqual(self.b.find_elements(By.CSS_SELECTOR, "#main img, #main script, #main b"),
                         [])
        self.shot("xss-probe")


class ScreenshotTest(BrowserTestCase):
    """The README's pictures, on a daemon of their own: a list with every
    status, a failed job, a pipeline."""

    def test_screenshots(self):
        ok = [self.d.submit("sha256", {"data": "report-%d" % i}, name="nightly-report-%d" % i)
              for i in range(3)]
        fail = self.d.submit("failtask", {"message": "upstream returned HTTP 502"},
                             name="sync-inventory", max_attempts=2)
        self.d.submit("dummytask", {"batch": 7}, name="send-digest",
                      run_at="2099-01-01T06:00:00Z")
        p = self.d.submit_pipeline([
            {"name": "extract", "task_name": "dummytask", "task_params": {"rows": 1200}},
            {"name": "load", "task_name": "echoprev", "use_previous_results": True}],
            name="etl-orders")
        cancelled = self.d.submit("sleep", {"seconds": 60}, name="rebuild-index", timeout=120)
        self.d.post("/api/jobs/%s/cancel" % cancelled["id"])
        self.d.wait_all([j["id"] for j in ok] + [fail["id"]], timeout=30)
        self.d.wait_pipeline(p["id"])
        self.d.submit("sleep", {"seconds": 120}, name="transcode-video", timeout=600)
        self.b.set_window_size(1400, 860)
        self.open()
        self.wait("a running job", lambda: self.b.find_elements(
            By.CSS_SELECTOR, '#jobs-table tr[data-status="IN_PROGRESS"]'))
        self.shot("jobs")
        self.b.set_window_size(1400, 1280)
        self.open("#/jobs/" + fail["id"])
        self.detail_status("FAILED")
        self.shot("job-failed")
        self.b.set_window_size(1400, 700)
        self.open("#/pipelines/" + p["id"])
        self.wait_css('#pipeline-detail[data-status="COMPLETED"]')
        self.shot("pipeline")


class DashboardAuthTest(BrowserTestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="valet-ui-keys-")
        cls.keys = os.path.join(cls.dir, "keys")
        cls.token = key_cmd(cls.keys, "create", "dash", "--scopes", "read,submit,cancel")
        # A key without the cancel scope; it reads only its own work, so it
        # submits what it looks at.
        cls.read_only = key_cmd(cls.keys, "create", "viewer", "--scopes", "read,submit")
        cls.admin = key_cmd(cls.keys, "create", "boss", "--scopes", "admin")
        cls.config = {"server": {"auth_keys": cls.keys}}
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls.dir, ignore_errors=True)

    def auth(self, token=None):
        return {"Authorization": "Bearer " + (token or self.token)}

    def submit(self, body):
        r = self.d.post("/api/jobs", body, headers=self.auth())
        self.assertEqual(r.status, 202, r)
        return r.json

    def test_files_need_no_key(self):
        self.assertEqual(self.d.get("/ui/").status, 200)
        self.assertEqual(self.d.get("/ui/app.js").status, 200)
        self.assertEqual(self.d.get("/api/jobs").status, 401)

    def test_token_flow(self):
        # The page's first API requests are answered 401: the browser logs them.
        self.expect_console = ["status of 401"]
        job = self.submit({"name": "behind-a-key", "task_name": "dummytask"})
        self.b.get(self.base)
        self.b.execute_script("sessionStorage.clear()")
        self.b.refresh()
        self.wait_css("#login:not([hidden])")
        self.assertFalse(self.b.find_elements(By.CSS_SELECTOR, "#jobs-table tr[data-id]"))
        self.shot("login")
        field = self.b.find_element(By.ID, "token")
        field.send_keys("vk_" + "0" * 64)
        self.b.find_element(By.ID, "login-submit").click()
        self.wait("the refusal", lambda: "not accepted" in
                  self.b.find_element(By.ID, "login-error").text)
        field.clear()
        field.send_keys(self.token)
        self.b.find_element(By.ID, "login-submit").click()
        self.row(job["id"])
        self.assertTrue(self.b.find_element(By.ID, "login").get_attribute("hidden") is not None)
        self.assertNotIn(self.token, self.b.current_url)
        self.assertNotIn(self.token[3:], self.b.current_url)
        self.assertEqual(self.b.execute_script("return sessionStorage.getItem('valet.token')"),
                         self.token)
        self.assertIsNone(self.b.execute_script("return localStorage.getItem('valet.token')"))
        self.assertNotIn(self.token, self.b.execute_script("return document.cookie"))
        # Kept for the session: a reload needs no key again.
        self.b.refresh()
        self.row(job["id"])
        self.assertIsNotNone(self.b.find_element(By.ID, "login").get_attribute("hidden"))
        # It went as a header, never in a URL: not in the daemon's log either.
        self.assertNotIn(self.token[3:], self.d.log_text())
        # Cancel works with it.
        sleeper = self.submit({"name": "s", "task_name": "sleep", "task_params": {"seconds": 60},
                               "timeout": 120})
        self.b.get(self.base + "#/jobs/" + sleeper["id"])
        self.wait_css('#job-detail button[data-action="cancel"]').click()
        self.detail_status("CANCELLED")
        self.b.find_element(By.ID, "signout").click()
        self.wait_css("#login:not([hidden])")
        self.assertIsNone(self.b.execute_script("return sessionStorage.getItem('valet.token')"))

    def test_read_only_key_cannot_cancel(self):
        self.expect_console = ["status of 401", "status of 403"]
        r = self.d.post("/api/jobs", {"name": "s", "task_name": "sleep",
                                      "task_params": {"seconds": 60}, "timeout": 120},
                        headers=self.auth(self.read_only))
        self.assertEqual(r.status, 202, r)
        sleeper = r.json
        self.b.get(self.base + "#/jobs/" + sleeper["id"])
        self.b.execute_script("sessionStorage.setItem('valet.token', arguments[0])",
                              self.read_only)
        self.b.refresh()
        self.detail_status("IN_PROGRESS")
        self.b.find_element(By.CSS_SELECTOR, '#job-detail button[data-action="cancel"]').click()
        self.wait("the refusal", lambda: "no cancel scope" in
                  self.b.find_element(By.ID, "notices").text)
        r = self.d.get("/api/jobs/" + sleeper["id"], headers=self.auth(self.read_only))
        self.assertEqual(r.json["status"], "IN_PROGRESS")
        self.d.post("/api/jobs/%s/cancel" % sleeper["id"], headers=self.auth(self.admin))
        self.b.execute_script("sessionStorage.clear()")


if __name__ == "__main__":
    unittest.main()
