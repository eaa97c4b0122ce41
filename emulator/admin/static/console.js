// The web console: polls the admin API and renders sessions, limits and events.
// Every value from the server goes through textContent: user and workstation names
// come from clients, so they are never parsed as HTML.
"use strict";

const REFRESH_MS = 2000;
const EVENTS_SHOWN = 15;
let csrf = null;  // bound to this login's cookie; sent on every change (see docs/admin.md)
let timer = null;
let host = null;  // in a lab of several hosts: the one shown (Terminal Services Manager's pane)

const $ = (id) => document.getElementById(id);

class HttpError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrf || "";
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await resp.json().catch(() => null);
  if (!resp.ok) throw new HttpError(resp.status, (data && data.error) || resp.statusText);
  return data;
}

// A host's route: /api/X, or /api/hosts/NAME/X when the lab has several hosts.
function hostPath(path) {
  return host === null ? path : `/api/hosts/${encodeURIComponent(host)}${path.slice(4)}`;
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function hms(seconds) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${pad(Math.floor(seconds / 3600))}:${pad(Math.floor(seconds / 60) % 60)}:${pad(seconds % 60)}`;
}

function setStatus(text, isError) {
  const status = $("status");
  status.textContent = text;
  status.className = isError ? "error" : "";
}

// What an administrator may do to a session of each protocol, as on Windows:
// `net session /delete` for SMB, rwinsta / tsdiscon for Remote Desktop.
const ACTIONS = {
  smb: [["Delete", "DELETE", (id) => `/api/sessions/${id}`]],
  rdp: [["Reset", "POST", (id) => `/api/sessions/${id}/reset`],
        ["Disconnect", "POST", (id) => `/api/sessions/${id}/disconnect`]],
};

function actionButton(session, [label, method, path]) {
  const button = el("button", label);
  button.type = "button";
  button.dataset.action = label.toLowerCase();
  button.disabled = label === "Disconnect" && session.state === "disconnected";
  button.addEventListener("click", async () => {
    const who = session.user || (session.anonymous ? "anonymous" : "?");
    if (!confirm(`${label} session ${session.id} (${who} from ${session.client || session.address})?`)) return;
    try {
      await api(method, hostPath(path(session.id)));
      await refresh();
    } catch (err) {
      setStatus(`${label} failed: ${err.message}`, true);
    }
  });
  return button;
}

function renderLimits(limits) {
  const body = $("limits").tBodies[0];
  body.replaceChildren(...limits.map((row) => {
    const tr = el("tr");
    tr.dataset.protocol = row.protocol;
    const full = el("td");
    if (row.limit === null) {
      full.textContent = "unlimited";
    } else if (row.limit === 0) {
      full.textContent = "not offered by this edition";
    } else {
      // Green while under half, yellow above, red when the next client will be refused.
      const meter = el("meter");
      meter.min = 0; meter.max = row.limit; meter.value = row.used; meter.optimum = 0;
      meter.low = row.limit / 2; meter.high = row.limit - 0.5;
      full.append(meter, ` ${Math.round(100 * row.used / row.limit)}%`);
    }
    tr.append(el("td", row.protocol.toUpperCase()), el("td", row.used, "num"),
              el("td", row.limit === null ? "unlimited" : row.limit, "num"), full);
    return tr;
  }));
}

function renderSessions(sessions, limits) {
  const tables = limits.map(({ protocol }) => {
    const table = el("table");
    table.id = `sessions-${protocol}`;
    const mine = sessions.filter((s) => s.protocol === protocol);
    table.append(el("caption", `${protocol.toUpperCase()} sessions (${mine.length})`));
    const head = el("tr");
    for (const name of ["Id", "User", "Client", "Address", "State", "Idle time", "Opens", ""]) {
      head.append(el("th", name));
    }
    table.append(el("thead"));
    table.tHead.append(head);
    const body = el("tbody");
    for (const s of mine) {
      const tr = el("tr", null, `state-${s.state}`);
      tr.dataset.sessionId = s.id;
      const actions = el("td");
      actions.append(...(ACTIONS[protocol] || []).map((a) => actionButton(s, a)));
      tr.append(el("td", s.console ? `${s.id} (console)` : s.id, "num"),
                el("td", s.user || (s.anonymous ? "(anonymous)" : "")),
                el("td", s.client), el("td", s.address), el("td", s.state),
                el("td", hms(s.idle_seconds), "num"), el("td", s.opens, "num"), actions);
      body.append(tr);
    }
    if (!mine.length) {
      const tr = el("tr");
      const td = el("td", "No sessions.");
      td.colSpan = 8;
      tr.append(td);
      body.append(tr);
    }
    table.append(body);
    return table;
  });
  $("sessions").replaceChildren(...tables);
}

function renderEvents(events) {
  $("events").tBodies[0].replaceChildren(...events.slice().reverse().map((e) => {
    const tr = el("tr");
    tr.append(el("td", e.time.replace("T", " ")), el("td", e.provider), el("td", e.id, "num"),
              el("td", e.level), el("td", e.user || ""), el("td", e.address || ""),
              el("td", e.message, "message"));
    return tr;
  }));
}

function renderHosts(hosts) {
  // One host (serve): no list, today's routes. Several (lab): a list to pick one from.
  $("hosts").hidden = hosts.length < 2;
  if (hosts.length < 2) { host = null; return; }
  if (!hosts.some((h) => h.name === host)) host = hosts[0].name;
  $("host-list").replaceChildren(...hosts.map((h) => {
    const item = el("li");
    const button = el("button", `${h.name} (${h.edition}, ${h.address})`);
    button.type = "button";
    button.dataset.host = h.name;
    button.setAttribute("aria-pressed", String(h.name === host));
    button.addEventListener("click", () => { host = h.name; refresh(); });
    item.append(button);
    return item;
  }));
}

async function refresh() {
  try {
    renderHosts(await api("GET", "/api/hosts"));
    const [sessions, limits, events, server] = await Promise.all([
      api("GET", hostPath("/api/sessions")), api("GET", hostPath("/api/limits")),
      api("GET", hostPath(`/api/events?last=${EVENTS_SHOWN}`)),
      api("GET", hostPath("/api/server")),
    ]);
    renderLimits(limits);
    renderSessions(sessions, limits);
    renderEvents(events);
    $("server").textContent = `${server.server_name} - ${server.software_version}`;
    setStatus(`updated ${new Date().toLocaleTimeString()}`, false);
  } catch (err) {
    if (err.status === 401) return showLogin();  // logged out, or the server restarted
    setStatus(`cannot reach the emulator: ${err.message}`, true);
  }
}

function showLogin() {
  clearInterval(timer);
  $("console").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("login-error").hidden = !new URLSearchParams(location.search).has("login");
}

async function start() {
  try {
    csrf = (await api("GET", "/api/csrf")).csrf;
  } catch (err) {
    if (err.status === 401) return showLogin();
    return setStatus(`cannot reach the emulator: ${err.message}`, true);
  }
  history.replaceState(null, "", "/");
  $("login").hidden = true;
  $("console").hidden = false;
  $("logout").hidden = false;
  await refresh();
  timer = setInterval(refresh, REFRESH_MS);
}

$("logout").addEventListener("click", async () => {
  await api("POST", "/api/logout").catch(() => null);
  showLogin();
});

start();
