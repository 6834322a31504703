// app.js - the dashboard's shell: the route in the URL's fragment, the
// poll every 2 s (paused while the tab is hidden), the API key form, the
// header's health line and the notices.
//
// A view (views.js) is an object with mount(root, ctx), which builds what
// stays (filters), and load(), which asks the API for what it shows and
// draws it. The poll calls load() of the current view, one request chain at
// a time; a change of route mounts the new view and polls at once.

import * as api from "./api.js";
import { h, fill } from "./dom.js";
import { viewFor } from "./views.js";

const POLL_MS = 2000;

const state = {
  view: null,
  timer: 0,
  running: false, // a poll is under way
  again: false, // another was asked for meanwhile
  needKey: false,
};

const $ = (id) => document.getElementById(id);

// ---- notices --------------------------------------------------------------

export function notify(text, kind) {
  const box = h("div", { class: "notice " + (kind || "info"), role: "status" }, text);
  $("notices").append(box);
  setTimeout(() => box.remove(), 6000);
}

// ---- routes ---------------------------------------------------------------

function parseRoute() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [path, query] = hash.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts: parts.length ? parts : ["jobs"], query: new URLSearchParams(query || "") };
}

export function go(hash) {
  if (location.hash === hash) poll();
  else location.hash = hash;
}

function mount() {
  const route = parseRoute();
  const root = $("main");
  state.view = viewFor(route, ctx);
  for (const a of document.querySelectorAll("nav.tabs a")) {
    a.classList.toggle("active", a.dataset.tab === route.parts[0]);
  }
  fill(root);
  state.view.mount(root);
  poll();
}

// ---- polling ----------------------------------------------------------------

function schedule() {
  clearTimeout(state.timer);
  state.timer = 0;
  if (!document.hidden && !state.needKey) state.timer = setTimeout(poll, POLL_MS);
}

export async function poll() {
  if (state.running) {
    state.again = true;
    return;
  }
  clearTimeout(state.timer);
  state.running = true;
  try {
    const view = state.view;
    await Promise.all([loadStatus(), view.load()]);
    if (view === state.view) setLive(true);
  } catch (e) {
    failed(e);
  } finally {
    state.running = false;
    if (state.again) {
      state.again = false;
      poll();
    } else {
      schedule();
    }
  }
}

function failed(e) {
  if (e instanceof api.AuthError) {
    askKey(api.token() ? "That API key was not accepted." : "");
    return;
  }
  setLive(false, e.message);
}

function setLive(ok, why) {
  const el = $("live");
  if (document.hidden) {
    el.className = "live paused";
    el.textContent = "paused";
    return;
  }
  el.className = ok ? "live on" : "live off";
  el.textContent = ok ? "live · " + new Date().toLocaleTimeString("en-GB") : "offline";
  el.title = why || "updated every 2 s while this tab is visible";
}

document.addEventListener("visibilitychange", () => {
  if (document.hidden) {
    clearTimeout(state.timer);
    state.timer = 0;
    setLive(true);
  } else {
    poll();
  }
});

async function loadStatus() {
  const s = await api.get("/api/status");
  const ok = s.job_queue_healthy && s.storage_healthy;
  const el = $("health");
  el.className = "health " + (ok ? "ok" : "bad");
  el.textContent = ok ? "healthy" : !s.storage_healthy ? "storage down" : "queue unhealthy";
  $("version").textContent = s.version ? "v" + s.version : "";
}

// ---- the API key --------------------------------------------------------------

function askKey(message) {
  state.needKey = true;
  clearTimeout(state.timer);
  $("login-error").textContent = message || "";
  $("live").className = "live off";
  $("live").textContent = "signed out";
  $("login").hidden = false;
  $("signout").hidden = true;
  $("token").value = "";
  $("token").focus();
}

function keyEntered(ev) {
  ev.preventDefault();
  const value = $("token").value.trim();
  if (!value) {
    $("login-error").textContent = "Enter an API key.";
    return;
  }
  api.setToken(value);
  state.needKey = false;
  $("login").hidden = true;
  $("signout").hidden = false;
  poll();
}

function signOut() {
  api.setToken("");
  askKey("");
}

// ---- what views get -------------------------------------------------------------

const ctx = {
  api,
  go,
  notify,
  poll,
  // An action's error, said in a notice (a 401 asks for the key again).
  report(e) {
    if (e instanceof api.AuthError) askKey("That API key was not accepted.");
    else notify(e.message, "error");
  },
};

function start() {
  $("login-form").addEventListener("submit", keyEntered);
  $("signout").addEventListener("click", signOut);
  $("signout").hidden = !api.token();
  window.addEventListener("hashchange", mount);
  mount();
}

start();
