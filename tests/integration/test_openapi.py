"""The OpenAPI document (api/openapi.json, served at GET /api/openapi.json)
against the server, both ways.

- It is served byte for byte as kept in the repository, and parses as an
  OpenAPI 3.0 document (structure checked here: no validator is installed,
  and nothing is fetched).
- Routes: every word api/routes.c matches path segments with is combined
  into every path shape the router knows (/api/W, /api/W/ID, /api/W/ID/W),
  and each is requested with every method on a running daemon. A route
  exists when the answer is anything but the router's own 404 "not found".
  The set of routes found must equal the set of operations documented.
- Errors: each operation documents exactly the statuses the server can
  answer for it (ROUTE_ERRORS below, read from api/routes.c,
  supervisor/core_ops.c, supervisor/core_cancel.c, plus the statuses of the
  HTTP edge and of API keys that any request may get, api/http.c,
  api/http_conn.c and api/http_parse.c), and the errors provoked here on a running daemon
  (400, 401, 403, 404, 409, 413 for each route that can give them) are
  among the ones documented for the route.
"""

import json
import os
import re
import subprocess
import time
import uuid

from valetd import REPO, VALETD, DaemonTestCase, scratch_dir

DOC_PATH = os.path.join(REPO, "api", "openapi.json")
ROUTES_C = os.path.join(REPO, "api", "routes.c")
METHODS = ("get", "post", "put", "patch", "delete")
# /ui and /ui/... are not probed: the web dashboard's static files (api/ui.c),
# served without a key, are no part of the API this document describes
# (test_ui.py checks what is served there, and that nothing else is).
OUTSIDE_API = ["/", "/api", "/api/", "/health", "/healthz", "/ready", "/openapi.json",
               "/index.html", "/favicon.ico"]
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

# Statuses any request may get: the HTTP edge (http_conn.c and http_parse.c:
# malformed 400, 408, 413, 414, 417, 431, 505; http.c: 503 for connections
# and shutdown), API keys (http.c: 401, 403), out of memory (500).
EDGE = {"400", "401", "403", "408", "413", "414", "417", "431", "500", "503", "505"}
# Per route: success, and what the route itself adds (404 unknown id, 409).
ROUTE_ERRORS = {
    ("get", "/api/status"): {"200"},
    ("get", "/api/tasks"): {"200"},
    ("get", "/api/openapi.json"): {"200"},
    ("get", "/metrics"): {"200"},
    ("post", "/api/jobs"): {"202"},
    ("get", "/api/jobs"): {"200"},
    ("get", "/api/jobs/{id}"): {"200", "404"},
    ("patch", "/api/jobs/{id}"): {"204", "404"},
    ("delete", "/api/jobs/{id}"): {"204", "404", "409"},
    ("post", "/api/jobs/{id}/cancel"): {"200", "404", "409"},
    ("get", "/api/jobs/{id}/results"): {"200", "404"},
    ("delete", "/api/jobs/{id}/results"): {"204", "404"},
    ("post", "/api/pipelines"): {"202"},
    ("get", "/api/pipelines"): {"200"},
    ("get", "/api/pipelines/{id}"): {"200", "404"},
    ("patch", "/api/pipelines/{id}"): {"204", "404"},
    ("delete", "/api/pipelines/{id}"): {"204", "404"},
    ("post", "/api/pipelines/{id}/cancel"): {"200", "404", "409"},
    ("get", "/api/pipelines/{id}/jobs"): {"200", "404"},
}


def load_doc():
    with open(DOC_PATH, "rb") as f:
        raw = f.read()
    return raw, json.loads(raw)


def operations(doc):
    """{(method, path): operation} of the document."""
    out = {}
    for path, item in doc["paths"].items():
        for m in HTTP_METHODS:
            if m in item:
                out[(m, path)] = item[m]
    return out


def resolve(doc, ref):
    assert ref.startswith("#/"), ref
    node = doc
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def all_refs(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                yield v
            else:
                yield from all_refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from all_refs(v)


def check(doc, value, schema, where="$"):
    """The ways value breaks schema (a small validator of the parts of
    OpenAPI 3.0 the document uses); [] when it conforms. Objects with
    properties are closed unless additionalProperties says otherwise."""
    if "$ref" in schema:
        return check(doc, value, resolve(doc, schema["$ref"]), where)
    if value is None:
        return [] if schema.get("nullable") or not schema else ["%s: null" % where]
    if "allOf" in schema:
        merged = {"type": "object", "properties": {}, "required": []}
        for part in schema["allOf"]:
            part = resolve(doc, part["$ref"]) if "$ref" in part else part
            merged["properties"].update(part.get("properties", {}))
            merged["required"] += part.get("required", [])
        return check(doc, value, merged, where)
    if "oneOf" in schema:
        fits = [s for s in schema["oneOf"] if not check(doc, value, s, where)]
        return [] if fits else ["%s: matches none of oneOf" % where]
    errors = []
    kind = schema.get("type")
    types = {"object": dict, "array": list, "string": str, "boolean": bool}
    if kind in types and not isinstance(value, types[kind]):
        return ["%s: not a %s: %r" % (where, kind, value)]
    if kind == "integer" and (isinstance(value, bool) or not isinstance(value, int)):
        return ["%s: not an integer: %r" % (where, value)]
    if kind == "number" and (isinstance(value, bool) or not isinstance(value, (int, float))):
        return ["%s: not a number: %r" % (where, value)]
    if "enum" in schema and value not in schema["enum"]:
        errors.append("%s: %r not in %r" % (where, value, schema["enum"]))
    if kind == "object":
        props = schema.get("properties")
        for key in schema.get("required", []):
            if key not in value:
                errors.append("%s: no %s" % (where, key))
        for key, v in value.items():
            if props is not None and key in props:
                errors += check(doc, v, props[key], "%s.%s" % (where, key))
            elif props is not None and schema.get("additionalProperties") is not True:
                errors.append("%s: %s is not documented" % (where, key))
    if kind == "array":
        for i, v in enumerate(value):
            errors += check(doc, v, schema.get("items", {}), "%s[%d]" % (where, i))
    return errors


def route_words():
    """The words of the path patterns in api/routes.c's table ("/api/jobs/:id/cancel":
    jobs, cancel), which the router matches paths against."""
    with open(ROUTES_C) as f:
        src = f.read()
    words = {w for pat in re.findall(r'"/api/([^"]+)"', src)
             for w in pat.split("/") if w and not w.startswith(":")}
    assert {"jobs", "pipelines", "status", "tasks"} <= words, words
    return words


class OpenApiTest(DaemonTestCase):
    config = {"server": {"max_body": "4k"}}

    def test_served_as_kept(self):
        raw, _ = load_doc()
        r = self.d.get("/api/openapi.json")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.header("content-type").startswith("application/json"))
        self.assertEqual(r.body, raw)

    def test_structure_is_openapi_3(self):
        _, doc = load_doc()
        self.assertRegex(doc["openapi"], r"^3\.0\.\d+$")
        self.assertIsInstance(doc["info"]["title"], str)
        self.assertEqual(doc["info"]["version"], "0.1.0")
        self.assertTrue(set(doc) <= {"openapi", "info", "servers", "paths", "components",
                                     "security", "tags", "externalDocs"}, set(doc))
        op_ids = set()
        for path, item in doc["paths"].items():
            self.assertTrue(path.startswith("/"), path)
            self.assertTrue(set(item) <= set(HTTP_METHODS) | {"parameters", "summary",
                                                              "description"}, path)
            names = set(re.findall(r"\{([^}]+)\}", path))
            declared = {p["name"] for p in item.get("parameters", []) if p["in"] == "path"}
            for m in HTTP_METHODS:
                if m not in item:
                    continue
                op = item[m]
                declared_op = declared | {p["name"] for p in op.get("parameters", [])
                                          if p["in"] == "path"}
                self.assertEqual(names, declared_op, (m, path))
                self.assertNotIn(op["operationId"], op_ids)
                op_ids.add(op["operationId"])
                self.assertTrue(op["responses"], (m, path))
                for code, resp in op["responses"].items():
                    self.assertRegex(code, r"^[1-5]\d\d$")
                    resp = resolve(doc, resp["$ref"]) if "$ref" in resp else resp
                    self.assertIsInstance(resp["description"], str)
                    for media, content in resp.get("content", {}).items():
                        # /metrics answers 200 in Prometheus' text format.
                        if (path, code) == ("/metrics", "200"):
                            self.assertTrue(media.startswith("text/plain; version=0.0.4"))
                        else:
                            self.assertEqual(media, "application/json")
                        self.assertIn("schema", content)
                if "requestBody" in op:
                    self.assertIn("application/json", op["requestBody"]["content"])
            for p in item.get("parameters", []):
                self.assertTrue(p["required"], p)
        for ref in all_refs(doc):
            resolve(doc, ref)  # KeyError: a $ref that leads nowhere
        for name, schema in doc["components"]["schemas"].items():
            self.assertTrue({"type", "allOf", "oneOf", "$ref"} & set(schema), name)
        # Every error response has the API's error body.
        for name, resp in doc["components"]["responses"].items():
            schema = resp["content"]["application/json"]["schema"]
            self.assertEqual(schema, {"$ref": "#/components/schemas/Error"}, name)

    def request(self, method, path, body=None):
        return self.d.client.request(method.upper(), path, raw=body,
                                     headers={"Content-Type": "application/json"})

    def ids(self, kind):
        return {x["id"] for x in self.d.get("/api/" + kind).json[kind]}

    def test_routes_both_ways(self):
        _, doc = load_doc()
        words = route_words()
        unknown = str(uuid.uuid4())
        shapes = ["/api/%s" % w for w in words]
        shapes += ["/api/%s/{id}" % w for w in words]
        shapes += ["/api/%s/{id}/%s" % (w, v) for w in words for v in words]
        # Outside /api: what an HTTP server commonly has there (the router
        # answers none of these today; a route added there, by another
        # module than routes.c, must be documented too).
        shapes += OUTSIDE_API + ["/metrics"]
        found = set()
        jobs, pipelines = self.ids("jobs"), self.ids("pipelines")
        for shape in shapes:
            path = shape.replace("{id}", unknown)
            for m in METHODS:
                # An empty JSON object: a body no route accepts whole, so
                # that nothing is created (POST /api/jobs: 400).
                r = self.request(m, path, b"{}" if m in ("post", "patch", "put") else None)
                self.assertNotEqual(r.status, 500, (m, path, r))
                if r.status == 404 and r.json == {"code": 404, "error": True,
                                                   "message": "not found"}:
                    continue
                found.add((m, shape))
        self.assertEqual(found, set(operations(doc)))
        # Nothing was created by the probing.
        self.assertEqual(self.ids("jobs"), jobs)
        self.assertEqual(self.ids("pipelines"), pipelines)

    def test_documented_statuses(self):
        _, doc = load_doc()
        ops = operations(doc)
        self.assertEqual(set(ops), set(ROUTE_ERRORS))
        for key, op in ops.items():
            self.assertEqual(set(op["responses"]), ROUTE_ERRORS[key] | EDGE, key)

    def assertConforms(self, method, shape, r):
        """r's status is documented for the operation, and its body fits
        the schema documented for that status."""
        _, doc = load_doc()
        responses = operations(doc)[(method, shape)]["responses"]
        self.assertIn(str(r.status), responses, (method, shape, r))
        resp = responses[str(r.status)]
        resp = resolve(doc, resp["$ref"]) if "$ref" in resp else resp
        content = resp.get("content")
        if content is None:
            self.assertEqual(r.body, b"", (method, shape, r))
            return
        errors = check(doc, r.json, content["application/json"]["schema"])
        self.assertEqual(errors, [], (method, shape, r))

    def test_answers_fit_their_schemas(self):
        c = self.d.client
        self.assertConforms("get", "/api/status", c.get("/api/status"))
        self.assertConforms("get", "/api/tasks", c.get("/api/tasks"))
        self.assertConforms("get", "/api/openapi.json", c.get("/api/openapi.json"))
        r = c.post("/api/jobs", {"name": "j", "task_name": "sha256", "task_params": {"data": "a"},
                                 "timeout": 2.5, "max_attempts": 2,
                                 "limits": {"memory": "64M", "processes": 16}})
        self.assertConforms("post", "/api/jobs", r)
        jid = r.json["id"]
        r = c.post("/api/pipelines", {"name": "p", "description": "d", "jobs": [
            {"name": "a", "task_name": "dummytask", "task_params": {"n": 1}},
            {"name": "b", "task_name": "echoprev", "use_previous_results": True}]})
        self.assertConforms("post", "/api/pipelines", r)
        pid = r.json["id"]
        r = c.post("/api/jobs", {"name": "later", "task_name": "dummytask",
                                 "run_at": "2099-01-01T00:00:00Z"})
        later = r.json["id"]
        deadline = time.monotonic() + 30
        while not all(c.get(p).json["status"] == "COMPLETED"
                      for p in ("/api/jobs/" + jid, "/api/pipelines/" + pid)):
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        self.assertConforms("get", "/api/jobs/{id}", c.get("/api/jobs/" + jid))
        self.assertIn("outcome", c.get("/api/jobs/" + jid).json)
        self.assertConforms("get", "/api/jobs/{id}/results", c.get("/api/jobs/%s/results" % jid))
        self.assertConforms("get", "/api/jobs", c.get("/api/jobs"))
        self.assertConforms("get", "/api/pipelines/{id}", c.get("/api/pipelines/" + pid))
        self.assertConforms("get", "/api/pipelines", c.get("/api/pipelines"))
        self.assertConforms("get", "/api/pipelines/{id}/jobs",
                            c.get("/api/pipelines/%s/jobs" % pid))
        self.assertConforms("patch", "/api/jobs/{id}", c.patch("/api/jobs/" + later,
                                                                {"description": "x"}))
        self.assertConforms("post", "/api/jobs/{id}/cancel", c.post("/api/jobs/%s/cancel" % later))
        self.assertConforms("get", "/api/jobs/{id}", c.get("/api/jobs/" + later))
        self.assertConforms("get", "/api/jobs/{id}", c.get("/api/jobs/" + str(uuid.uuid4())))
        self.assertConforms("delete", "/api/jobs/{id}/results",
                            c.delete("/api/jobs/%s/results" % jid))
        self.assertConforms("delete", "/api/jobs/{id}", c.delete("/api/jobs/" + jid))
        self.assertConforms("delete", "/api/pipelines/{id}", c.delete("/api/pipelines/" + pid))

    def assertDocumented(self, method, shape, r):
        _, doc = load_doc()
        codes = set(operations(doc)[(method, shape)]["responses"])
        self.assertIn(str(r.status), codes, (method, shape, r))
        self.assertEqual(set(r.json), {"code", "error", "message"}, r)

    def test_provoked_errors_are_documented(self):
        unknown = str(uuid.uuid4())
        big = json.dumps({"name": "x" * 5000}).encode()
        for (m, shape) in ROUTE_ERRORS:
            path = shape.replace("{id}", unknown)
            if "{id}" in shape:
                r = self.request(m, path, b'{"name": "n"}' if m == "patch" else None)
                self.assertEqual(r.status, 404, (m, path, r))
                self.assertDocumented(m, shape, r)
            if m in ("post", "patch"):
                r = self.request(m, path, big)
                self.assertEqual(r.status, 413, (m, path, r))
                self.assertDocumented(m, shape, r)
                if "{id}" not in shape:
                    r = self.request(m, path, b"[1]")
                    self.assertEqual(r.status, 400, (m, path, r))
                    self.assertDocumented(m, shape, r)
            if m == "get" and shape in ("/api/jobs", "/api/pipelines"):
                r = self.request(m, path + "?status=nope")
                self.assertEqual(r.status, 400)
                self.assertDocumented(m, shape, r)
        # 409: a pipeline's job deleted alone; cancels of finished work.
        p = self.d.post("/api/pipelines", {"name": "p", "jobs": [
            {"name": "a", "task_name": "dummytask"}, {"name": "b", "task_name": "dummytask"}]})
        self.assertEqual(p.status, 202, p)
        pid, jid = p.json["id"], p.json["jobs"][0]["id"]
        r = self.d.delete("/api/jobs/" + jid)
        self.assertEqual(r.status, 409, r)
        self.assertDocumented("delete", "/api/jobs/{id}", r)
        deadline = time.monotonic() + 30
        while self.d.get("/api/pipelines/" + pid).json["status"] != "COMPLETED":
            self.assertLess(time.monotonic(), deadline, "the pipeline did not complete")
            time.sleep(0.05)
        for kind, fid in (("jobs", jid), ("pipelines", pid)):
            r = self.d.post("/api/%s/%s/cancel" % (kind, fid))
            self.assertEqual(r.status, 409, r)
            self.assertDocumented("post", "/api/%s/{id}/cancel" % kind, r)


class OpenApiAuthTest(DaemonTestCase):
    """401 and 403 on every route, under API keys: documented for each."""

    @classmethod
    def setUpClass(cls):
        d = scratch_dir("valet-openapi-keys-")
        keys = os.path.join(d, "keys")
        r = subprocess.run([VALETD, "--file", keys, "key", "create", "nothing", "--scopes",
                            "read"], capture_output=True, text=True, timeout=30, check=True)
        cls.token = r.stdout.strip()
        cls.config = {"server": {"auth_keys": keys, "open_status": "false"}}
        super().setUpClass()

    def test_denials_documented(self):
        _, doc = load_doc()
        unknown = str(uuid.uuid4())
        for (m, shape), op in operations(doc).items():
            path = shape.replace("{id}", unknown)
            r = self.d.client.request(m.upper(), path)
            self.assertEqual(r.status, 401, (m, path, r))
            self.assertIn("401", op["responses"])
            if m != "get":
                r = self.d.client.request(m.upper(), path,
                                          headers={"Authorization": "Bearer " + self.token})
                self.assertEqual(r.status, 403, (m, path, r))
                self.assertIn("403", op["responses"])
