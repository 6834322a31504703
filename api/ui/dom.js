// dom.js - building the page's elements, and formatting values for it.
//
// Everything the API returns is put on the page as text: h() makes each
// string child a text node and sets attributes one by one, never through
// HTML, so a job's name or params (chosen by whoever submitted it) cannot
// become markup or script.

export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "on") {
      for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    } else if (k === "class") {
      el.className = v;
    } else if (k === "dataset") {
      Object.assign(el.dataset, v);
    } else {
      el.setAttribute(k, v === true ? "" : String(v));
    }
  }
  append(el, children);
  return el;
}

// Replace el's children with these (falsy ones left out, as in h()).
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

// A link inside the page: "#/jobs/<id>" with the id as a path segment.
export function route(...parts) {
  return "#/" + parts.map((p) => encodeURIComponent(String(p))).join("/");
}

export function badge(status) {
  const known = /^[A-Z_]+$/.test(status || "") ? status : "UNKNOWN";
  return h("span", { class: "badge st-" + known.toLowerCase() }, (status || "?").replace("_", " "));
}

export function fmtTime(ts) {
  if (!ts) return "";
  const d = new Date(ts);
  if (isNaN(d)) return String(ts);
  const p = (n) => String(n).padStart(2, "0");
  return (
    d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + " " +
    p(d.getHours()) + ":" + p(d.getMinutes()) + ":" + p(d.getSeconds())
  );
}

export function timeCell(ts) {
  return ts ? h("time", { datetime: ts, title: ts }, fmtTime(ts)) : h("span", { class: "muted" }, "—");
}

export function fmtMs(ms) {
  if (ms === undefined || ms === null) return "";
  if (ms < 1000) return ms + " ms";
  const s = ms / 1000;
  if (s < 60) return (s < 10 ? s.toFixed(2) : s.toFixed(1)) + " s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + " min " + Math.round(s - m * 60) + " s";
  return Math.floor(m / 60) + " h " + (m % 60) + " min";
}

// How long a job or pipeline ran, or has been running.
export function runtime(o) {
  if (o.duration !== undefined) return fmtMs(o.duration);
  if (o.started_at && o.status === "IN_PROGRESS") {
    return "running " + fmtMs(Math.max(0, Date.now() - new Date(o.started_at).getTime()));
  }
  return "";
}

export function fmtKb(kb) {
  if (kb === undefined || kb === null) return "—";
  if (kb < 1024) return kb + " KiB";
  return (kb / 1024).toFixed(1) + " MiB";
}

export function fmtBytes(b) {
  if (b === undefined || b === null) return "none";
  return fmtKb(Math.round(b / 1024));
}

export function fmtNum(n) {
  return Number(n).toLocaleString("en-US");
}

export function shortId(id) {
  return String(id || "").slice(0, 8);
}

// JSON shown as text, indented.
export function jsonBlock(v) {
  return h("pre", { class: "json" }, v === undefined ? "—" : JSON.stringify(v, null, 2));
}

// A definition list of [label, value] pairs; values that are undefined,
// null or "" are left out.
export function facts(pairs) {
  const dl = h("dl", { class: "facts" });
  for (const [k, v] of pairs) {
    if (v === undefined || v === null || v === "") continue;
    dl.append(h("dt", null, k), h("dd", null, v));
  }
  return dl;
}
