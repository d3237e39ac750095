// Orion console: plain DOM code against the REST API, no framework and no build step.
// The token lives in sessionStorage (this tab only) and travels as an Authorization header on
// every fetch, never in a URL. Streams (events, logs) are read with fetch() rather than
// EventSource, which cannot send that header.
"use strict";

const TOKEN_KEY = "orion.token";
const REFRESH_MS = 2000; // the open view is re-read this often, and at once on each event
const MAX_EVENTS = 300; // events kept for the feed view
const LOG_TAIL = 500; // lines of a task's log shown before following
// A read that never answers would hold render()'s guard for good and freeze every view.
const API_TIMEOUT_MS = 15000;

const state = {
  events: [], // newest last
  feed: "off", // "live", "unavailable", "reconnecting"
  feedDetail: "",
  lastIndex: null,
  feedAbort: null,
  viewAbort: null, // a running logs stream of the open view
  timer: null,
  rendering: false,
};

// ------------------------------------------------------------------ helpers

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function badge(value) {
  return el("span", { class: "state " + String(value || "").toLowerCase() }, value || "-");
}

function when(seconds) {
  if (!seconds) return "-";
  return new Date(seconds * 1000).toLocaleString();
}

function clock(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleTimeString() : "-";
}

function ago(seconds) {
  if (!seconds) return "-";
  const delta = Math.max(0, Date.now() / 1000 - seconds);
  if (delta < 60) return Math.round(delta) + "s ago";
  if (delta < 3600) return Math.round(delta / 60) + "m ago";
  if (delta < 86400) return Math.round(delta / 3600) + "h ago";
  return Math.round(delta / 86400) + "d ago";
}

function bytes(n) {
  if (!n) return "0";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

function shortId(id) {
  return String(id).slice(0, 12);
}

function bar(used, total, label) {
  if (!total) return el("span", { class: "bar-label" }, "not reported");
  const share = Math.min(1, used / total);
  const fill = el("div", { class: share > 0.85 ? "fill high" : "fill" });
  fill.style.width = (share * 100).toFixed(1) + "%"; // CSSOM, which the style-src policy allows
  return el("div", {}, el("div", { class: "bar", title: label }, fill), el("span", { class: "bar-label" }, label));
}

function table(headers, rows) {
  return el(
    "table",
    {},
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: headers.length, class: "muted" }, "none")))
  );
}

function fields(pairs) {
  return el("dl", { class: "fields" }, pairs.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

// ------------------------------------------------------------------ the API

class Unavailable extends Error {}
class SignedOut extends Error {}

function authHeaders() {
  const token = sessionStorage.getItem(TOKEN_KEY) || "";
  return token ? { Authorization: "Bearer " + token } : {};
}

async function failure(response, path) {
  let body = {};
  try {
    body = await response.json();
  } catch (_) {
    body = {};
  }
  const message = body.error || response.status + " " + response.statusText;
  if (response.status === 401) {
    signOut(message);
    return new SignedOut(message);
  }
  if (response.status === 404 && message.startsWith("no route")) {
    return new Unavailable(path + " is not served by this node (" + message + ")");
  }
  return new Error(message);
}

async function api(path, signal) {
  const limit = AbortSignal.timeout(API_TIMEOUT_MS);
  signal = signal ? AbortSignal.any([signal, limit]) : limit;
  const response = await fetch(path, { headers: authHeaders(), cache: "no-store", signal });
  if (!response.ok) throw await failure(response, path);
  return response.json();
}

// Reads a streaming response body, handing each decoded piece of text to onText.
async function readStream(path, signal, onText) {
  const response = await fetch(path, { headers: authHeaders(), cache: "no-store", signal });
  if (!response.ok) throw await failure(response, path);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    onText(decoder.decode(value, { stream: true }));
  }
}

// ------------------------------------------------------------------ the event feed

function setFeed(status, detail) {
  state.feed = status;
  state.feedDetail = detail || "";
  const badgeNode = document.getElementById("feed-status");
  badgeNode.hidden = false;
  badgeNode.className = "feed " + (status === "live" ? "live" : "down");
  badgeNode.textContent =
    status === "live" ? "live" : status === "unavailable" ? "event feed unavailable" : "reconnecting";
  badgeNode.title = state.feedDetail;
}

// One server-sent event block ("id: 7\nevent: task\ndata: {...}") into its parts.
function parseBlock(block) {
  const message = { id: null, data: "" };
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue; // a keep-alive comment
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (name === "id") message.id = value;
    else if (name === "event") message.event = value;
    else if (name === "data") message.data += value;
  }
  return message;
}

async function followEvents() {
  stopFeed();
  const abort = new AbortController();
  state.feedAbort = abort;
  while (!abort.signal.aborted) {
    // Resume after the last whole Raft index seen, so a reconnect neither skips nor repeats.
    const since = state.lastIndex === null ? "" : "&since=" + state.lastIndex;
    let buffered = "";
    let partial = []; // events of an index whose closing "id:" has not come yet
    try {
      setFeed("live");
      await readStream("/events?follow=1" + since, abort.signal, (text) => {
        buffered += text;
        let end;
        while ((end = buffered.indexOf("\n\n")) >= 0) {
          const message = parseBlock(buffered.slice(0, end));
          buffered = buffered.slice(end + 2);
          if (message.event === "error") throw new Error(message.data);
          if (!message.data) continue;
          partial.push(JSON.parse(message.data));
          if (message.id === null) continue;
          // A whole index at once: a reconnection after it neither repeats nor skips any of it.
          state.events.push(...partial);
          partial = [];
          state.events.splice(0, Math.max(0, state.events.length - MAX_EVENTS));
          state.lastIndex = Number(message.id);
          scheduleRender();
        }
      });
    } catch (error) {
      if (abort.signal.aborted || error instanceof SignedOut) return;
      if (error instanceof Unavailable) {
        setFeed("unavailable", error.message);
        scheduleRender();
        return; // polling keeps the views current
      }
      setFeed("reconnecting", error.message);
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

function stopFeed() {
  if (state.feedAbort) state.feedAbort.abort();
  state.feedAbort = null;
}

// ------------------------------------------------------------------ views

async function overviewView() {
  // One request at a time: the REST port allows a few connections per address, and the
  // event feed and a followed log already hold one each.
  const raft = await api("/raft");
  const nodes = await api("/nodes");
  const tasks = await api("/tasks");
  let services = null;
  try {
    services = await api("/services");
  } catch (error) {
    if (!(error instanceof Unavailable)) throw error;
  }
  const byState = {};
  for (const task of tasks) byState[task.state] = (byState[task.state] || 0) + 1;
  const card = (label, value) => el("div", { class: "card" }, el("div", { class: "label" }, label), el("div", { class: "value" }, value));
  const members = nodes.map((node) =>
    el(
      "tr",
      {},
      el("td", { class: "mono" }, node.id),
      el("td", {}, node.address),
      el("td", {}, badge(node.status)),
      el("td", {}, badge(node.role)),
      el("td", {}, node.suffrage)
    )
  );
  return [
    el("h2", {}, "Cluster"),
    el(
      "div",
      { class: "cards", id: "overview-cards" },
      card("Leader", raft.leaderId || "none"),
      card("Term", raft.term),
      card("Commit index", raft.commitIndex),
      card("Members", nodes.length),
      card("Tasks", tasks.length),
      card("Services", services === null ? "-" : services.length)
    ),
    el("h3", {}, "Tasks by state"),
    el("div", { class: "cards" }, Object.keys(byState).sort().map((s) => card(s, byState[s]))),
    el("h3", {}, "Members"),
    el("p", { class: "muted" }, "As node " + raft.nodeId + " (" + raft.role + ") sees them. Voters: " + raft.voters.join(", ")),
    table(["Node", "Address", "Status", "Raft role", "Suffrage"], members),
  ];
}

async function nodesView() {
  const nodes = await api("/nodes");
  const rows = nodes.map((node) => {
    const meta = node.meta || {};
    const placement = node.drain
      ? "draining (" + node.drain.remaining + " left)"
      : node.eligible
        ? "eligible"
        : "ineligible";
    return el(
      "tr",
      {},
      el("td", { class: "mono" }, node.id),
      el("td", {}, node.address),
      el("td", {}, badge(node.status)),
      el("td", {}, badge(node.role)),
      el("td", {}, placement),
      el("td", {}, bar(node.allocatedMemory, meta.memoryTotal, bytes(node.allocatedMemory) + " / " + bytes(meta.memoryTotal))),
      el("td", {}, bar(node.allocatedCpu, meta.cpuTotal, node.allocatedCpu + " / " + (meta.cpuTotal || 0) + " cores")),
      el("td", {}, bar(node.allocatedDisk, meta.diskTotal, bytes(node.allocatedDisk) + " / " + bytes(meta.diskTotal)))
    );
  });
  return [
    el("h2", {}, "Nodes"),
    el("p", { class: "muted" }, "Bars: capacity allocated to placed tasks out of what each node reports."),
    table(["Node", "Address", "Status", "Raft role", "Placement", "Memory", "CPU", "Disk"], rows),
  ];
}

function taskRows(tasks) {
  return tasks
    .slice()
    .sort((a, b) => b.createdAt - a.createdAt)
    .map((task) =>
      el(
        "tr",
        { "data-task": task.id },
        el("td", { class: "mono" }, el("a", { href: "#task/" + encodeURIComponent(task.id) }, shortId(task.id))),
        el("td", {}, task.name),
        el("td", {}, task.image),
        el("td", {}, badge(task.state)),
        el("td", { class: "mono" }, task.nodeId || "-"),
        el("td", {}, task.service ? el("a", { href: "#service/" + encodeURIComponent(task.service) }, task.service) : "-"),
        el("td", {}, task.reason || ""),
        el("td", {}, String(task.restarts)),
        el("td", { title: when(task.updatedAt) }, ago(task.updatedAt))
      )
    );
}

const TASK_HEADERS = ["ID", "Name", "Image", "State", "Node", "Service", "Reason", "Restarts", "Updated"];

async function tasksView() {
  const tasks = await api("/tasks");
  return [el("h2", {}, "Tasks (" + tasks.length + ")"), table(TASK_HEADERS, taskRows(tasks))];
}

async function taskView(id) {
  const task = await api("/tasks/" + encodeURIComponent(id));
  const history = task.history
    .slice()
    .reverse()
    .map((step) =>
      el("tr", {}, el("td", { class: "nowrap" }, when(step.at)), el("td", {}, badge(step.state)), el("td", { class: "mono" }, step.nodeId || "-"), el("td", {}, step.reason || ""))
    );
  const ports = Object.entries(task.hostPorts || {}).map(([port, host]) => port + " -> " + (task.hostIp || "") + ":" + host);
  return [
    el("h2", {}, "Task " + task.name),
    fields([
      ["ID", el("span", { class: "mono" }, task.id)],
      ["State", badge(task.state)],
      ["Reason", task.reason || "-"],
      ["Image", task.image],
      ["Command", task.command ? task.command.map((arg) => (/\s/.test(arg) ? JSON.stringify(arg) : arg)).join(" ") : "(image default)"],
      ["Node", task.nodeId || "-"],
      ["Service", task.service ? task.service + " slot " + task.slot : "-"],
      ["Desired", task.desired],
      ["Restarts", String(task.restarts)],
      ["Exit code", task.exitCode === null ? "-" : String(task.exitCode)],
      ["Ports", ports.length ? ports.join(", ") : "-"],
      ["Created", when(task.createdAt)],
    ]),
    el("h3", {}, "History"),
    table(["When", "State", "Node", "Reason"], history),
    el("h3", {}, "Logs"),
    el("pre", { class: "logs", id: "task-logs" }, "loading..."),
  ];
}

// Follows a task's log into the view's <pre>; a node without the logs route says so.
function followLogs(id) {
  const pre = document.getElementById("task-logs");
  if (!pre || state.viewAbort) return;
  const abort = new AbortController();
  state.viewAbort = abort;
  let started = false;
  const path = "/tasks/" + encodeURIComponent(id) + "/logs?follow=1&tail=" + LOG_TAIL;
  readStream(path, abort.signal, (text) => {
    if (!started) pre.textContent = "";
    started = true;
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.append(text);
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  })
    .then(() => {
      if (!started) pre.textContent = "(no output)";
    })
    .catch((error) => {
      if (abort.signal.aborted) return;
      pre.textContent = "";
      pre.append(el("span", { class: error instanceof Unavailable ? "unavailable" : "error" }, "Logs unavailable: " + error.message));
    });
}

async function servicesView() {
  let services;
  try {
    services = await api("/services");
  } catch (error) {
    if (error instanceof Unavailable) return [el("h2", {}, "Services"), el("p", { class: "unavailable" }, error.message)];
    throw error;
  }
  const tasks = await api("/tasks");
  const running = {};
  for (const task of tasks) if (task.service && task.state.toLowerCase() === "running") running[task.service] = (running[task.service] || 0) + 1;
  const rows = services.map((service) =>
    el(
      "tr",
      {},
      el("td", {}, el("a", { href: "#service/" + encodeURIComponent(service.name) }, service.name)),
      el("td", {}, service.spec.template.image),
      el("td", {}, (running[service.name] || 0) + " / " + service.spec.replicas),
      el("td", {}, String(service.version)),
      el("td", {}, badge(service.update.state)),
      el("td", {}, service.update.message || ""),
      el("td", { title: when(service.updatedAt) }, ago(service.updatedAt))
    )
  );
  return [el("h2", {}, "Services (" + services.length + ")"), table(["Name", "Image", "Running / wanted", "Version", "Update", "Message", "Updated"], rows)];
}

async function serviceView(name) {
  const encoded = encodeURIComponent(name);
  const service = await api("/services/" + encoded);
  const tasks = await api("/services/" + encoded + "/tasks");
  const update = service.update;
  const ports = (service.spec.ports || []).map((p) => p.published + " -> " + p.target + "/" + p.protocol).join(", ");
  return [
    el("h2", {}, "Service " + service.name),
    fields([
      ["Image", service.spec.template.image],
      ["Replicas", String(service.spec.replicas)],
      ["Version", service.version + " (template " + service.templateVersion + ")"],
      ["Update", [badge(update.state), update.message ? " " + update.message : ""]],
      ["Ports", ports || "-"],
      ["Created", when(service.createdAt)],
    ]),
    el("h3", {}, "Tasks"),
    table(TASK_HEADERS, taskRows(tasks)),
  ];
}

async function eventsView() {
  const head = el("h2", {}, "Events");
  if (state.feed === "unavailable") return [head, el("p", { class: "unavailable", id: "events-unavailable" }, "Event feed unavailable: " + state.feedDetail)];
  const rows = state.events
    .slice()
    .reverse()
    .map((event) =>
      el(
        "tr",
        { "data-event": event.index },
        el("td", {}, String(event.index)),
        el("td", { class: "nowrap", title: when(event.at) }, clock(event.at)),
        el("td", {}, event.type),
        el("td", {}, event.action),
        el("td", { class: "mono" }, event.type === "task" ? el("a", { href: "#task/" + encodeURIComponent(event.id) }, shortId(event.id)) : event.id),
        el("td", {}, event.previous ? [badge(event.previous), " -> ", badge(event.state)] : badge(event.state)),
        el("td", {}, Object.entries(event.changed || {}).map(([k, v]) => k + "=" + v).join(", "))
      )
    );
  return [
    head,
    el("p", { class: "muted" }, "Committed changes as they happen (newest first; the last " + MAX_EVENTS + " are kept)."),
    table(["Index", "When", "Type", "Action", "ID", "State", "Changed"], rows),
  ];
}

// ------------------------------------------------------------------ routing

function route() {
  const [name, ...rest] = (location.hash.slice(1) || "overview").split("/");
  return { name, arg: decodeURIComponent(rest.join("/")) };
}

const VIEWS = {
  overview: overviewView,
  nodes: nodesView,
  tasks: tasksView,
  task: taskView,
  services: servicesView,
  service: serviceView,
  events: eventsView,
};

async function render() {
  if (state.rendering || !sessionStorage.getItem(TOKEN_KEY + ".set")) return;
  state.rendering = true;
  const { name, arg } = route();
  const view = VIEWS[name] || overviewView;
  const main = document.getElementById("view");
  for (const link of document.querySelectorAll("nav a")) {
    const target = link.getAttribute("href").slice(1);
    link.classList.toggle("current", target === name || target === name + "s");
  }
  try {
    const content = await view(arg);
    // Keep a followed log across refreshes: only the parts above it are redrawn.
    const logs = document.getElementById("task-logs");
    const fresh = el("div", { "data-view": name }, content);
    const freshLogs = fresh.querySelector("#task-logs");
    if (logs && freshLogs && main.dataset.route === location.hash) freshLogs.replaceWith(logs);
    main.replaceChildren(fresh);
    main.dataset.route = location.hash;
    if (name === "task") followLogs(arg);
  } catch (error) {
    if (!(error instanceof SignedOut)) {
      main.replaceChildren(el("p", { class: error instanceof Unavailable ? "unavailable" : "error" }, error.message));
    }
  } finally {
    state.rendering = false;
  }
}

let pending = null;
function scheduleRender() {
  if (pending) return;
  pending = setTimeout(() => {
    pending = null;
    render();
  }, 150);
}

function onRouteChange() {
  if (state.viewAbort) state.viewAbort.abort();
  state.viewAbort = null;
  document.getElementById("view").replaceChildren(el("p", { class: "muted" }, "loading..."));
  render();
}

// ------------------------------------------------------------------ sign in and out

function showLogin(message) {
  document.getElementById("login").hidden = false;
  document.getElementById("view").hidden = true;
  document.getElementById("nav").hidden = true;
  document.getElementById("sign-out").hidden = true;
  document.getElementById("feed-status").hidden = true;
  document.getElementById("login-error").textContent = message || "";
  document.getElementById("token").focus();
}

function showConsole() {
  document.getElementById("login").hidden = true;
  document.getElementById("view").hidden = false;
  document.getElementById("nav").hidden = false;
  document.getElementById("sign-out").hidden = false;
  followEvents();
  clearInterval(state.timer);
  state.timer = setInterval(render, REFRESH_MS);
  onRouteChange();
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(TOKEN_KEY + ".set");
  stopFeed();
  if (state.viewAbort) state.viewAbort.abort();
  state.viewAbort = null;
  clearInterval(state.timer);
  showLogin(message);
}

async function signIn(event) {
  event.preventDefault();
  const input = document.getElementById("token");
  sessionStorage.setItem(TOKEN_KEY, input.value.trim());
  input.value = "";
  try {
    await api("/raft"); // a 401 here signs out again with the server's reason
  } catch (error) {
    if (!(error instanceof SignedOut)) document.getElementById("login-error").textContent = error.message;
    return;
  }
  sessionStorage.setItem(TOKEN_KEY + ".set", "1");
  showConsole();
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("login-form").addEventListener("submit", signIn);
  document.getElementById("sign-out").addEventListener("click", () => signOut(""));
  window.addEventListener("hashchange", onRouteChange);
  if (sessionStorage.getItem(TOKEN_KEY + ".set")) showConsole();
  else showLogin("");
});
