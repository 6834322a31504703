// api.js - the dashboard's client of valetd's HTTP JSON API (README, "The
// HTTP API"): requests with the API key, and list windows and counts over
// lists that are oldest first, have limit and offset, and no total.
//
// The key is kept in sessionStorage (this tab, until it closes) and sent as
// "Authorization: Bearer"; it never goes into a URL. A 401 raises
// AuthError, which the page answers with its key form.

const TOKEN_KEY = "valet.token";

export class AuthError extends Error {}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

// One request; the decoded JSON body (null for none). Errors: AuthError on
// 401, ApiError with the API's message otherwise.
export async function request(method, path, body) {
  const headers = { Accept: "application/json" };
  const t = token();
  if (t) headers.Authorization = "Bearer " + t;
  const init = { method, headers, cache: "no-store", credentials: "omit" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, "valetd cannot be reached");
  }
  const text = await r.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch (e) {
      throw new ApiError(r.status, "not a JSON answer (HTTP " + r.status + ")");
    }
  }
  if (r.status === 401) throw new AuthError(data && data.message ? data.message : "API key needed");
  if (!r.ok && r.status !== 503) {
    throw new ApiError(r.status, data && data.message ? data.message : "HTTP " + r.status);
  }
  if (r.status === 503 && !(data && "storage_healthy" in data)) {
    throw new ApiError(r.status, data && data.message ? data.message : "HTTP 503");
  }
  return data;
}

export const get = (path) => request("GET", path);
export const post = (path, body) => request("POST", path, body);

// ---- lists ---------------------------------------------------------------

// base: "/api/jobs" or "/api/pipelines"; status: "" for all.
function listPath(base, status, offset, limit) {
  const q = new URLSearchParams();
  if (status) q.set("status", status);
  q.set("offset", String(offset));
  q.set("limit", String(limit));
  return base + "?" + q.toString();
}

function listKey(base) {
  return base.endsWith("pipelines") ? "pipelines" : "jobs";
}

export async function listPage(base, status, offset, limit) {
  const data = await get(listPath(base, status, offset, limit));
  return data[listKey(base)] || [];
}

// Where each list ended last time, and how much it moved: the next count
// starts there.
const ends = new Map();

// The number of items of a list. The API gives no total, so this asks
// whether items exist at offsets: one request of at most two items when the
// list did not change since last time; else a gallop from there and a
// bisection (a few requests of one item).
export async function listCount(base, status) {
  const key = base + "|" + status;
  const last = ends.get(key) || { end: 0, moved: 1 };
  const exists = async (i) => (await listPage(base, status, i, 1)).length === 1;
  let lo; // an index known to exist (-1: none known)
  let hi; // an index known not to exist
  if (last.end === 0) {
    if (!(await exists(0))) return remember(key, last, 0);
    lo = 0;
  } else {
    const n = (await listPage(base, status, last.end - 1, 2)).length;
    if (n === 1) return remember(key, last, last.end);
    if (n === 2) {
      lo = last.end;
    } else {
      lo = -1;
      hi = last.end - 1;
    }
  }
  if (hi === undefined) {
    let step = Math.max(1, last.moved);
    hi = lo + step;
    while (await exists(hi)) {
      lo = hi;
      step *= 2;
      hi = lo + step;
    }
  }
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (await exists(mid)) lo = mid;
    else hi = mid;
  }
  return remember(key, last, lo + 1);
}

function remember(key, last, end) {
  ends.set(key, { end, moved: Math.max(1, Math.abs(end - last.end)) });
  return end;
}

// The window of a list that page `page` (0: the newest) of `size` items
// shows: {items (newest first), total, first, last (1-based positions)}.
export async function listWindow(base, status, page, size) {
  const total = await listCount(base, status);
  const end = Math.max(total - page * size, 0);
  const offset = Math.max(end - size, 0);
  const items = end > offset ? await listPage(base, status, offset, end - offset) : [];
  items.reverse();
  return { items, total, first: offset + 1, last: offset + items.length };
}
