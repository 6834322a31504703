// views.js - the dashboard's pages: jobs (counts by status, a filtered
// list, newest first), a job, pipelines, a pipeline.
//
// Lists are windows of the API's lists (api.listWindow): the newest 50
// items of the status asked for. The API filters by status only, so the
// task filter looks at a wider window (the newest 500 of that status) and
// keeps the jobs of that task; the page says so.

import {
  h, fill, route, badge, timeCell, runtime, fmtMs, fmtKb, fmtBytes, fmtNum, shortId, jsonBlock, facts,
} from "./dom.js";

const STATUSES = ["PENDING", "SCHEDULED", "IN_PROGRESS", "COMPLETED", "FAILED", "CANCELLED"];
const FINAL = new Set(["COMPLETED", "FAILED", "CANCELLED"]);
const PAGE = 50;
const TASK_WINDOW = 500;

export function viewFor(r, ctx) {
  const [kind, id] = r.parts;
  if (kind === "pipelines") return id ? pipelineView(ctx, id) : pipelinesView(ctx, r.query);
  return id ? jobView(ctx, id) : jobsView(ctx, r.query);
}

// ---- shared pieces ------------------------------------------------------------

function hashWith(kind, query, changes) {
  const q = new URLSearchParams(query);
  for (const [k, v] of Object.entries(changes)) {
    if (v === "" || v === 0 || v === null) q.delete(k);
    else q.set(k, String(v));
  }
  const s = q.toString();
  return "#/" + kind + (s ? "?" + s : "");
}

function statusSelect(current, onChange) {
  const sel = h("select", { id: "filter-status", "aria-label": "status" },
    h("option", { value: "" }, "all statuses"),
    STATUSES.map((s) => h("option", { value: s, selected: s === current }, s.replace("_", " "))));
  sel.addEventListener("change", () => onChange(sel.value));
  return sel;
}

function pager(win, size, page, onPage) {
  const info = win.total
    ? fmtNum(win.first) + "–" + fmtNum(win.last) + " of " + fmtNum(win.total)
    : "none";
  return h("div", { class: "pager" },
    h("span", { class: "muted" }, info),
    h("button", { type: "button", id: "page-newer", disabled: page === 0,
      on: { click: () => onPage(page - 1) } }, "‹ Newer"),
    h("button", { type: "button", id: "page-older", disabled: win.first <= 1,
      on: { click: () => onPage(page + 1) } }, "Older ›"));
}

function emptyRow(cols, text) {
  return h("tr", { class: "empty" }, h("td", { colspan: cols }, text));
}

function canCancel(o) {
  return o && !FINAL.has(o.status);
}

async function cancel(ctx, kind, id) {
  try {
    await ctx.api.post("/api/" + kind + "/" + encodeURIComponent(id) + "/cancel");
    ctx.notify((kind === "jobs" ? "Job " : "Pipeline ") + shortId(id) + " cancelled.", "ok");
  } catch (e) {
    ctx.report(e);
  }
  ctx.poll();
}

// A new job with the same task, params, timeout, attempts and limits.
async function resubmit(ctx, job) {
  const body = { name: job.name, task_name: job.task_name };
  if (job.description) body.description = job.description;
  if (job.task_params !== undefined) body.task_params = job.task_params;
  if (job.timeout !== undefined) body.timeout = job.timeout;
  if (job.max_attempts !== undefined) body.max_attempts = job.max_attempts;
  if (job.limits) {
    const limits = {};
    for (const [k, v] of Object.entries(job.limits)) if (v !== null) limits[k] = v;
    if (Object.keys(limits).length) body.limits = limits;
  }
  try {
    const created = await ctx.api.post("/api/jobs", body);
    ctx.notify("Resubmitted as job " + shortId(created.id) + ".", "ok");
    ctx.go(route("jobs", created.id));
  } catch (e) {
    ctx.report(e);
  }
}

function jobActions(ctx, job) {
  return h("div", { class: "actions" },
    canCancel(job) && h("button", { type: "button", class: "danger", dataset: { action: "cancel" },
      on: { click: (ev) => { ev.stopPropagation(); cancel(ctx, "jobs", job.id); } } }, "Cancel"),
    !job.pipeline_id && h("button", { type: "button", dataset: { action: "resubmit" },
      on: { click: (ev) => { ev.stopPropagation(); resubmit(ctx, job); } } }, "Resubmit"));
}

function jobRow(ctx, job) {
  const href = route("jobs", job.id);
  return h("tr", { class: "link", dataset: { id: job.id, status: job.status },
    on: { click: () => ctx.go(href) } },
    h("td", { class: "name" }, h("a", { href }, job.name || "(no name)")),
    h("td", null, job.task_name),
    h("td", null, badge(job.status)),
    h("td", null, timeCell(job.created_at)),
    h("td", { class: "num" }, runtime(job)),
    h("td", { class: "mono muted" }, shortId(job.id)),
    h("td", null, jobActions(ctx, job)));
}

function jobTable(ctx, jobs, emptyText) {
  return h("table", { class: "list", id: "jobs-table" },
    h("thead", null, h("tr", null, ["Name", "Task", "Status", "Created", "Runtime", "ID", ""]
      .map((t) => h("th", null, t)))),
    h("tbody", null, jobs.length ? jobs.map((j) => jobRow(ctx, j)) : emptyRow(7, emptyText)));
}

// ---- jobs -------------------------------------------------------------------

function jobsView(ctx, query) {
  const status = STATUSES.includes(query.get("status")) ? query.get("status") : "";
  const task = query.get("task") || "";
  const page = Math.max(0, parseInt(query.get("page") || "0", 10) || 0);
  const set = (changes) => ctx.go(hashWith("jobs", query, { page: 0, ...changes }));
  const cards = h("div", { class: "cards", id: "counts" });
  const taskSel = h("select", { id: "filter-task", "aria-label": "task" },
    h("option", { value: "" }, "all tasks"));
  const body = h("div", { class: "panel" });
  let tasksLoaded = false;
  taskSel.addEventListener("change", () => set({ task: taskSel.value }));

  function drawCards(counts) {
    fill(cards, ...STATUSES.map((s, i) => h("a", {
      class: "card st-" + s.toLowerCase() + (s === status ? " active" : ""),
      href: hashWith("jobs", query, { status: s === status ? "" : s, page: 0 }),
      dataset: { status: s } },
    h("span", { class: "count" }, fmtNum(counts[i])),
    h("span", { class: "label" }, s.replace("_", " ").toLowerCase()))));
  }

  async function loadTasks() {
    const { tasks } = await ctx.api.get("/api/tasks");
    const names = new Set(tasks || []);
    if (task) names.add(task);
    fill(taskSel, h("option", { value: "" }, "all tasks"),
      [...names].sort().map((t) => h("option", { value: t, selected: t === task }, t)));
    tasksLoaded = true;
  }

  return {
    mount(root) {
      fill(root,
        h("div", { class: "title" }, h("h1", null, "Jobs")),
        cards,
        h("div", { class: "toolbar" },
          h("label", null, "Status ", statusSelect(status, (v) => set({ status: v }))),
          h("label", null, "Task ", taskSel),
          (status || task) && h("a", { href: "#/jobs", class: "clear" }, "clear filters")),
        body);
    },
    async load() {
      const [counts, win] = await Promise.all([
        Promise.all(STATUSES.map((s) => ctx.api.listCount("/api/jobs", s))),
        ctx.api.listWindow("/api/jobs", status, page, task ? TASK_WINDOW : PAGE),
        tasksLoaded ? null : loadTasks(),
      ]);
      drawCards(counts);
      const jobs = task ? win.items.filter((j) => j.task_name === task) : win.items;
      const what = (status ? status.replace("_", " ").toLowerCase() + " " : "") + "jobs";
      fill(body,
        h("div", { class: "panel-head" },
          h("span", null, task
            ? fmtNum(jobs.length) + " " + task + " " + what + " among these"
            : "Newest first"),
          pager(win, task ? TASK_WINDOW : PAGE, page, (p) => ctx.go(hashWith("jobs", query, { page: p })))),
        jobTable(ctx, jobs, "No " + (task ? task + " " : "") + what + " here."),
        task && h("p", { class: "note" }, "The API filters by status only: the task filter looks at " +
          "the newest " + TASK_WINDOW + " jobs of the status chosen; use Older for the ones before."));
    },
  };
}

// ---- a job ---------------------------------------------------------------------

function outcomeFacts(o) {
  if (!o) return h("p", { class: "muted" }, "Not run yet.");
  const yes = (b) => (b ? "yes" : "no");
  return facts([
    ["Exit code", o.exit_code === null ? "—" : String(o.exit_code)],
    ["Signal", o.signal === null ? "—" : String(o.signal)],
    ["Timed out", yes(o.timed_out)],
    ["OOM killed", yes(o.oom_killed)],
    ["Seccomp syscall", o.seccomp_syscall === null ? "—" : String(o.seccomp_syscall)],
    ["CPU time", fmtMs(o.cpu_ms)],
    ["Wall time", fmtMs(o.wall_ms)],
    ["Max RSS", fmtKb(o.max_rss_kb)],
    ["Memory peak", fmtKb(o.memory_peak_kb)],
    ["PID", o.pid === undefined ? "" : String(o.pid)],
  ]);
}

function isolationFacts(i) {
  if (!i) return h("p", { class: "muted" }, "Not run yet.");
  return facts([
    ["Namespaces", (i.namespaces || []).join(", ") || "none"],
    ["cgroup", i.cgroup === null ? "none" : String(i.cgroup)],
    ["UID", i.uid === undefined ? "" : String(i.uid)],
    ["Profile", i.profile],
    ["Network", i.network],
    ["Degraded", i.degraded ? "YES - isolation is degraded" : "no"],
  ]);
}

function limitsFacts(l) {
  return facts([
    ["Memory", fmtBytes(l.memory)],
    ["CPU time", l.cpu === null ? "none" : l.cpu + " s"],
    ["Processes", l.processes === null ? "none" : String(l.processes)],
    ["Output", fmtBytes(l.output)],
  ]);
}

function section(title, ...content) {
  return h("section", { class: "panel" }, h("h2", null, title), ...content);
}

function jobView(ctx, id) {
  let root;
  let result; // the job's result, once it is final
  return {
    mount(r) {
      root = r;
      fill(root, h("p", { class: "muted" }, "Loading job " + shortId(id) + "…"));
    },
    async load() {
      const job = await ctx.api.get("/api/jobs/" + encodeURIComponent(id));
      if (FINAL.has(job.status) && result === undefined) {
        try {
          result = await ctx.api.get("/api/jobs/" + encodeURIComponent(id) + "/results");
        } catch (e) {
          if (e.status !== 404) throw e;
          result = null;
        }
      }
      draw(job);
    },
  };

  function draw(job) {
    const attempts = job.max_attempts ? (job.attempt || 0) + " of " + job.max_attempts : "";
    fill(root,
      h("div", { class: "crumbs" }, h("a", { href: "#/jobs" }, "Jobs"), " / ", shortId(job.id)),
      h("div", { class: "title", id: "job-detail", dataset: { id: job.id, status: job.status } },
        h("h1", null, job.name || "(no name)"), badge(job.status), jobActions(ctx, job)),
      job.failure_reason && h("div", { class: "reason", id: "failure-reason" },
        h("strong", null, job.status === "CANCELLED" ? "Cancelled: " : "Failure: "), job.failure_reason),
      h("section", { class: "panel" }, facts([
        ["ID", h("span", { class: "mono" }, job.id)],
        ["Task", job.task_name],
        ["Description", job.description],
        ["Pipeline", job.pipeline_id && h("a", { href: route("pipelines", job.pipeline_id) },
          shortId(job.pipeline_id))],
        ["Next job", job.next_job_id && h("a", { href: route("jobs", job.next_job_id) },
          shortId(job.next_job_id))],
        ["Uses previous result", job.use_previous_results ? "yes" : ""],
        ["Timeout", job.timeout !== undefined ? job.timeout + " s" : ""],
        ["Attempts", attempts],
        ["Run at", job.run_at && timeCell(job.run_at)],
        ["Scheduled", job.scheduled_at && timeCell(job.scheduled_at)],
        ["Created", timeCell(job.created_at)],
        ["Started", job.started_at && timeCell(job.started_at)],
        ["Completed", job.completed_at && timeCell(job.completed_at)],
        ["Runtime", runtime(job)],
      ])),
      h("div", { class: "grid2" },
        section("Parameters", jobsonOrNone(job.task_params, "No parameters.")),
        section("Result", resultBlock(job))),
      h("div", { class: "grid2" },
        section("Outcome", outcomeFacts(job.outcome)),
        section("Isolation", isolationFacts(job.isolation))),
      job.limits && section("Limits", limitsFacts(job.limits)));
  }

  function resultBlock(job) {
    if (!FINAL.has(job.status)) return h("p", { class: "muted" }, "No result yet.");
    if (!result) return h("p", { class: "muted" }, "No result stored.");
    return h("div", { id: "result" },
      result.error !== undefined && h("div", { class: "reason" }, h("strong", null, "Error: "), result.error),
      result.metadata !== undefined && jsonBlock(result.metadata));
  }
}

function jobsonOrNone(v, text) {
  return v === undefined ? h("p", { class: "muted" }, text) : h("div", { id: "params" }, jsonBlock(v));
}

// ---- pipelines --------------------------------------------------------------------

function pipelineRow(ctx, p) {
  const href = route("pipelines", p.id);
  return h("tr", { class: "link", dataset: { id: p.id, status: p.status }, on: { click: () => ctx.go(href) } },
    h("td", { class: "name" }, h("a", { href }, p.name || "(no name)")),
    h("td", null, badge(p.status)),
    h("td", null, timeCell(p.created_at)),
    h("td", { class: "num" }, runtime(p)),
    h("td", { class: "mono muted" }, shortId(p.id)),
    h("td", null, canCancel(p) && h("button", { type: "button", class: "danger",
      dataset: { action: "cancel" },
      on: { click: (ev) => { ev.stopPropagation(); cancel(ctx, "pipelines", p.id); } } }, "Cancel")));
}

function pipelinesView(ctx, query) {
  const status = STATUSES.includes(query.get("status")) ? query.get("status") : "";
  const page = Math.max(0, parseInt(query.get("page") || "0", 10) || 0);
  const body = h("div", { class: "panel" });
  return {
    mount(root) {
      fill(root,
        h("div", { class: "title" }, h("h1", null, "Pipelines")),
        h("div", { class: "toolbar" }, h("label", null, "Status ",
          statusSelect(status, (v) => ctx.go(hashWith("pipelines", query, { status: v, page: 0 }))))),
        body);
    },
    async load() {
      const win = await ctx.api.listWindow("/api/pipelines", status, page, PAGE);
      fill(body,
        h("div", { class: "panel-head" }, h("span", null, "Newest first"),
          pager(win, PAGE, page, (p) => ctx.go(hashWith("pipelines", query, { page: p })))),
        h("table", { class: "list", id: "pipelines-table" },
          h("thead", null, h("tr", null, ["Name", "Status", "Created", "Runtime", "ID", ""]
            .map((t) => h("th", null, t)))),
          h("tbody", null, win.items.length ? win.items.map((p) => pipelineRow(ctx, p))
            : emptyRow(6, "No pipelines here."))));
    },
  };
}

function pipelineView(ctx, id) {
  let root;
  return {
    mount(r) {
      root = r;
      fill(root, h("p", { class: "muted" }, "Loading pipeline " + shortId(id) + "…"));
    },
    async load() {
      const path = "/api/pipelines/" + encodeURIComponent(id);
      const [p, list] = await Promise.all([ctx.api.get(path), ctx.api.get(path + "/jobs")]);
      fill(root,
        h("div", { class: "crumbs" }, h("a", { href: "#/pipelines" }, "Pipelines"), " / ", shortId(p.id)),
        h("div", { class: "title", id: "pipeline-detail", dataset: { id: p.id, status: p.status } },
          h("h1", null, p.name || "(no name)"), badge(p.status),
          canCancel(p) && h("div", { class: "actions" }, h("button", { type: "button", class: "danger",
            dataset: { action: "cancel" }, on: { click: () => cancel(ctx, "pipelines", p.id) } }, "Cancel"))),
        h("section", { class: "panel" }, facts([
          ["ID", h("span", { class: "mono" }, p.id)],
          ["Description", p.description],
          ["Run at", p.run_at && timeCell(p.run_at)],
          ["Created", timeCell(p.created_at)],
          ["Started", p.started_at && timeCell(p.started_at)],
          ["Completed", p.completed_at && timeCell(p.completed_at)],
          ["Runtime", runtime(p)],
        ])),
        section("Jobs, in order", jobTable(ctx, list.jobs || [], "No jobs.")));
    },
  };
}
