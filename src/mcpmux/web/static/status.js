// mcpmux status page: polls the JSON API and updates the page in place (no framework, no build step).
"use strict";

const POLL_MS = 1000;
const TOKEN_KEY = "mcpmux.statusToken";
const api = document.body.dataset.api;
const approveUrl = document.body.dataset.approve;
const serversEl = document.getElementById("servers");
const routesBody = document.querySelector("#routes tbody");
const template = document.getElementById("server-template");
const connection = document.getElementById("connection");
const announcer = document.getElementById("announcer");
const login = document.getElementById("login");
const loginError = document.getElementById("login-error");
const cards = new Map(); // server name -> {el, state, tools}
const dataParts = ["servers-section", "routes-section"].map((id) => document.getElementById(id));
const skipLink = document.querySelector("a.skip");
const clusterUrl = document.body.dataset.cluster; // "" unless cluster mode is on
const clusterSection = document.getElementById("cluster-section");
const mode = document.body.dataset.mode; // token, open or off: who may see the data (server-rendered)
let timer = null;
let rendered = false;

function showData(visible) {
  for (const part of [...dataParts, skipLink]) part.hidden = !visible;
  if (!visible) clusterSection.hidden = true;
}

function authHeaders() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: "Bearer " + token } : {};
}

function schedule() {
  clearTimeout(timer);
  timer = setTimeout(poll, POLL_MS);
}

async function poll() {
  try {
    const resp = await fetch(api, { headers: authHeaders(), cache: "no-store" });
    if (resp.status === 401) {
      showLogin(sessionStorage.getItem(TOKEN_KEY) ? "That token was not accepted." : "");
      return; // polling resumes after signing in
    }
    if (resp.status === 403) {
      showData(false);
      connection.textContent = "Operator views are off: set mcpProxy.operatorTokens in the config";
      return; // nothing to poll for
    }
    if (!resp.ok) throw new Error("HTTP " + resp.status);
    const data = await resp.json();
    login.hidden = true;
    render(data);
    await pollCluster();
    connection.textContent = "Live, updated " + new Date().toLocaleTimeString();
  } catch (err) {
    connection.textContent = "Cannot reach the proxy (" + err.message + "); retrying";
  }
  schedule();
}

function showLogin(message) {
  showData(false);
  login.hidden = false;
  loginError.textContent = message;
  connection.textContent = "Sign in to see the status";
  document.getElementById("token").focus();
}

login.addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, document.getElementById("token").value);
  loginError.textContent = "";
  poll();
});

function formatDuration(seconds) {
  if (!seconds) return "–";
  let s = Math.floor(seconds);
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  const parts = [];
  if (d) parts.push(d + "d");
  if (d || h) parts.push(h + "h");
  if (d || h || m) parts.push(m + "m");
  parts.push(s + "s");
  return parts.join(" ");
}

function field(root, name) {
  return root.querySelector('[data-field="' + name + '"]');
}

function configText(config) {
  return config ? JSON.stringify(config, null, 2) : "";
}

async function copyText(text, status) {
  try {
    await navigator.clipboard.writeText(text);
    status.textContent = "Copied to the clipboard";
  } catch (err) {
    // No clipboard access (insecure context, denied permission): copy through a selected textarea.
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "visually-hidden";
    document.body.appendChild(area);
    area.select();
    const ok = document.execCommand && document.execCommand("copy");
    area.remove();
    status.textContent = ok ? "Copied to the clipboard" : "Could not copy: open “Client config” and copy it";
  }
}

function copyButton(button, status, getText) {
  button.addEventListener("click", () => {
    const text = getText();
    button.dataset.copied = text; // what was copied, also readable without clipboard access
    copyText(text, status);
  });
}

function newCard(name) {
  const el = template.content.firstElementChild.cloneNode(true);
  el.dataset.server = name;
  el.querySelector(".server-name").textContent = name;
  const headingId = "server-" + cards.size;
  el.querySelector(".server-name").id = headingId;
  el.setAttribute("aria-labelledby", headingId);
  el.querySelector(".pins").setAttribute("aria-label", "Pending pin changes of " + name);
  const card = { el, state: null, tools: null, pins: null, config: "" };
  copyButton(el.querySelector("button.copy"), el.querySelector(".copy-status"), () => card.config);
  el.querySelector("button.copy").setAttribute("aria-label", "Copy client config for " + name);
  return card;
}

function renderTools(list, tools) {
  list.replaceChildren(
    ...tools.map((tool) => {
      const li = document.createElement("li");
      const code = document.createElement("code");
      code.textContent = tool.name;
      li.append(code);
      const text = tool.title || tool.description;
      if (text) {
        const span = document.createElement("span");
        span.className = "description";
        span.textContent = " – " + text;
        li.append(span);
      }
      return li;
    }),
  );
}

const MARKS = { added: "+", removed: "−", changed: "~", annotations: "~" };

function changeText(change) {
  if (change.change === "added") return "new (not in the lock file)";
  if (change.change === "removed") return "removed";
  if (change.change === "annotations") return "annotations changed";
  return change.fields && change.fields.length ? "changed: " + change.fields.join(", ") : "changed";
}

async function approve(button, server, tool) {
  button.disabled = true;
  const body = tool === null ? { server } : { server, tool };
  try {
    const resp = await fetch(approveUrl, {
      method: "POST",
      headers: { ...authHeaders(), "Content-Type": "application/json" },
      body: JSON.stringify(body),
      cache: "no-store",
    });
    if (!resp.ok) throw new Error("HTTP " + resp.status);
    announcer.textContent = "Approved " + (tool === null ? "every change of " : tool + " of ") + server;
  } catch (err) {
    announcer.textContent = "Could not approve (" + err.message + ")";
    button.disabled = false;
  }
  poll();
}

function approveButton(server, tool, label, text) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = text;
  button.setAttribute("aria-label", label);
  button.addEventListener("click", () => approve(button, server, tool));
  return button;
}

function pinItem(change, server, canApprove) {
  const li = document.createElement("li");
  li.dataset.kind = change.kind;
  li.dataset.name = change.name;
  const mark = document.createElement("span");
  mark.className = "pin-mark";
  mark.setAttribute("aria-hidden", "true");
  mark.textContent = MARKS[change.change] || "~";
  const subject = document.createElement(change.kind === "tools" ? "code" : "span");
  subject.textContent = change.kind === "tools" ? change.name : (change.kind + " " + change.name).trim();
  const what = document.createElement("span");
  what.className = "pin-what";
  what.textContent = changeText(change);
  li.append(mark, " ", subject, " ", what);
  if (canApprove && change.kind === "tools") {
    li.append(" ", approveButton(server, change.name, "Approve tool " + change.name + " of " + server, "Approve"));
  }
  return li;
}

function renderPins(card, server) {
  const changes = (server.pinning && server.pinning.changes) || [];
  const canApprove = mode === "token" && Boolean(sessionStorage.getItem(TOKEN_KEY));
  const key = JSON.stringify([changes, canApprove]);
  if (card.pins === key) return; // rebuilding would drop keyboard focus from the buttons
  card.pins = key;
  const section = card.el.querySelector(".pins");
  section.hidden = !changes.length;
  section.querySelector("ul").replaceChildren(...changes.map((c) => pinItem(c, server.name, canApprove)));
  const every = canApprove && changes.length
    ? [approveButton(server.name, null, "Approve all changes of " + server.name, "Approve all")]
    : [];
  section.querySelector(".approve-all").replaceChildren(...every);
}

function updateCard(card, server) {
  const el = card.el;
  const state = field(el, "state");
  if (card.state !== server.state) {
    if (card.state !== null) announcer.textContent = server.name + " is " + server.state;
    card.state = server.state;
    state.textContent = server.state;
    state.className = "state state-" + server.state;
    el.dataset.state = server.state;
  }
  field(el, "transport").textContent = server.transport;
  field(el, "uptime").textContent = server.ready ? formatDuration(server.uptimeSeconds) : "–";
  field(el, "restarts").textContent = String(server.restarts);
  field(el, "sessions").textContent = String(server.sessions);
  field(el, "lastError").textContent = server.lastError || "none";
  const stderr = (server.lastStderr || []).join("\n"); // a stdio server's last lines, redacted
  field(el, "stderr").textContent = stderr;
  el.querySelector(".stderr").hidden = !stderr;
  field(el, "mcp").textContent = server.urls.mcp;
  field(el, "sse").textContent = server.urls.sse;
  const toolsKey = JSON.stringify(server.tools);
  if (card.tools !== toolsKey) {
    card.tools = toolsKey;
    field(el, "toolCount").textContent = String(server.tools.length);
    renderTools(el.querySelector(".tools ul"), server.tools);
  }
  renderPins(card, server);
  card.config = configText(server.clientConfig);
  const pre = field(el, "config");
  if (pre.textContent !== card.config) pre.textContent = card.config;
  el.querySelector("button.copy").disabled = !card.config;
}

function renderServers(servers) {
  const seen = new Set();
  servers.forEach((server, index) => {
    seen.add(server.name);
    let card = cards.get(server.name);
    if (!card) {
      card = newCard(server.name);
      cards.set(server.name, card);
    }
    updateCard(card, server);
    if (serversEl.children[index] !== card.el) serversEl.insertBefore(card.el, serversEl.children[index] || null);
  });
  for (const [name, card] of cards) {
    if (!seen.has(name)) {
      card.el.remove();
      cards.delete(name);
    }
  }
}

function cell(row, content) {
  const td = document.createElement("td");
  if (typeof content === "string") td.textContent = content;
  else td.append(...content);
  row.append(td);
}

function codeLines(urls) {
  return [urls.mcp, urls.sse].map((url) => {
    const div = document.createElement("div");
    const code = document.createElement("code");
    code.textContent = url;
    div.append(code);
    return div;
  });
}

function routeRow(label, route) {
  const row = document.createElement("tr");
  row.dataset.route = route.name;
  const th = document.createElement("th");
  th.scope = "row";
  th.textContent = label;
  row.append(th);
  cell(row, route.servers.join(", ") || "none");
  cell(row, String(route.tools));
  cell(row, String(route.sessions));
  cell(row, codeLines(route.urls));
  const button = document.createElement("button");
  button.type = "button";
  button.className = "copy";
  button.textContent = "Copy";
  button.setAttribute("aria-label", "Copy client config for " + label);
  const status = document.createElement("span");
  status.className = "copy-status";
  status.setAttribute("role", "status");
  const text = configText(route.clientConfig);
  button.disabled = !text;
  copyButton(button, status, () => text);
  cell(row, [button, document.createTextNode(" "), status]);
  return row;
}

let routesKey = null;

function renderRoutes(data) {
  const rows = [];
  if (data.merged.enabled) rows.push(["Merged (" + data.merged.name + ")", data.merged]);
  for (const group of data.groups) rows.push(["Group " + group.name, group]);
  const key = JSON.stringify(rows);
  if (key === routesKey) return; // rebuilding would drop keyboard focus from the copy buttons
  routesKey = key;
  if (!rows.length) {
    const row = document.createElement("tr");
    cell(row, "No merged endpoint or groups are configured.");
    row.firstChild.colSpan = 6;
    routesBody.replaceChildren(row);
    return;
  }
  routesBody.replaceChildren(...rows.map(([label, route]) => routeRow(label, route)));
}

async function pollCluster() {
  if (!clusterUrl) return;
  try {
    const resp = await fetch(clusterUrl, { headers: authHeaders(), cache: "no-store" });
    if (!resp.ok) throw new Error("HTTP " + resp.status);
    renderCluster(await resp.json());
  } catch (err) {
    clusterSection.hidden = true; // the servers' status still shows
  }
}

function renderCluster(view) {
  const rows = view.replicas.map((member) => {
    const row = document.createElement("tr");
    row.dataset.replica = member.replica;
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = member.replica + (member.self ? " (this replica)" : "");
    row.append(th);
    const stats = member.stats || {};
    cell(row, String(member.url));
    cell(row, String(member.health ?? "unknown"));
    cell(row, member.heartbeatSeconds == null ? "\u2013" : member.heartbeatSeconds + "s ago");
    for (const name of ["sessions", "forwarded", "streams"]) cell(row, String(stats[name] ?? ""));
    return row;
  });
  clusterSection.querySelector("tbody").replaceChildren(...rows);
  clusterSection.hidden = false;
}

function render(data) {
  if (!rendered) {
    rendered = true;
    for (const card of serversEl.querySelectorAll("[data-ssr]")) card.remove(); // the server's first view
  }
  showData(true);
  document.title = data.name + " status";
  document.getElementById("proxy-name").textContent = data.name;
  renderServers(data.servers);
  renderRoutes(data);
}

if (mode === "token" && !sessionStorage.getItem(TOKEN_KEY) && !login.hidden) {
  showLogin(login.querySelector("#login-error").textContent); // signing in starts polling
} else if (mode !== "off") {
  poll();
}
