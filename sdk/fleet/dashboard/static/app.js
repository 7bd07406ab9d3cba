"use strict";
// The Ember fleet dashboard: a server-sent event stream of fleet snapshots (/api/stream) rendered into
// the page; history plots from /api/history/<device>; admin actions through POST /api/command.
// Everything that comes from devices is untrusted: it is set as text, never as HTML.
const $ = (id) => document.getElementById(id);
const TIERS = ["fp32", "fp16", "int8"];
const rows = new Map();
let selected = null, lastHistory = 0, state = null;

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}
const fmt = (v, d = 1) => (v === null || v === undefined || v === "" ? "-" : Number(v).toFixed(d));
const clock = (ts) => new Date(ts * 1000).toLocaleTimeString([], { hour12: false });

function detail(data) {
  if (!data) return "";
  const short = data.message || data.reason || data.tier || data.to || data.state || data.version || "";
  const rest = Object.entries(data).filter(([k]) => !["message", "level"].includes(k))
    .map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join(" ");
  return (short && !rest.includes(String(short)) ? short + " " : "") + rest.slice(0, 200);
}

// -- devices ------------------------------------------------------------------------------------------
const COLS = ["device", "status", "version", "tier", "fps", "p50", "p95", "battery", "temp", "cpu", "energy",
  "drift", "gaps", "event"];

function makeRow(name) {
  const tr = el("tr");
  tr.dataset.device = name;
  const cells = {};
  for (const c of COLS) { cells[c] = el("td", "col-" + c); tr.appendChild(cells[c]); }
  const act = el("td", "admin-only");
  const sel = el("select");
  for (const t of TIERS) { const o = el("option", null, t); o.value = t; sel.appendChild(o); }
  const pin = el("button", "pin", "pin"), unpin = el("button", "unpin", "unpin");
  const back = el("button", "rollback", "rollback");
  pin.onclick = (e) => { e.stopPropagation(); command(name, { cmd: "pin_tier", tier: sel.value }); };
  unpin.onclick = (e) => { e.stopPropagation(); command(name, { cmd: "unpin_tier" }); };
  back.onclick = (e) => {
    e.stopPropagation();
    if (confirm(`Roll ${name} back to its previous model version?`)) command(name, { cmd: "rollback" });
  };
  back.hidden = true;  // shown when the devices' command set has "rollback" (model rollout)
  sel.onclick = (e) => e.stopPropagation();
  act.append(sel, pin, unpin, back);
  tr.back_ = back;
  tr.appendChild(act);
  tr.onclick = () => select(name);
  tr.cells_ = cells;
  return tr;
}

function driftChips(td, d) {
  td.replaceChildren();
  const feats = Object.entries(d.drift || {}).sort();
  if (!feats.length && d.drift_state) feats.push(["all", d.drift_state]);
  for (const [name, st] of feats) {
    const chip = el("span", "chip " + (["ok", "warn", "alert"].includes(st) ? st : "unknown"), `${name}:${st}`);
    td.appendChild(chip);
  }
  td.classList.toggle("drift-alert", feats.some(([, st]) => st === "alert"));
  if (!feats.length) td.textContent = "-";
}

function renderDevices(devices) {
  const body = document.querySelector("#devices tbody");
  for (const d of devices) {
    let tr = rows.get(d.device);
    if (!tr) { tr = makeRow(d.device); rows.set(d.device, tr); body.appendChild(tr); }
    const c = tr.cells_;
    c.device.textContent = d.device;
    const st = d.online === true ? "online" : d.online === false ? "offline" : "?";
    c.status.textContent = st + (d.age_s !== null && d.age_s > 5 ? ` (${Math.round(d.age_s)} s ago)` : "");
    c.status.className = "col-status " + st;
    tr.dataset.online = st;
    c.version.textContent = d.version || "-";
    c.tier.textContent = d.tier || "-";
    c.fps.textContent = fmt(d.fps);
    c.p50.textContent = fmt(d.p50_ms);
    c.p95.textContent = fmt(d.p95_ms);
    c.battery.textContent = fmt(d.battery, 0);
    c.temp.textContent = fmt(d.temperature);
    c.cpu.textContent = fmt(d.cpu, 0);
    c.energy.textContent = fmt(d.energy_mj, 2);
    c.energy.title = d.energy_source || "";
    driftChips(c.drift, d);
    c.gaps.textContent = d.gaps;
    c.event.textContent = d.last_event || "-";
    tr.back_.hidden = !(state && state.commands.includes("rollback"));
  }
}

function renderAlerts(alerts) {
  const box = $("alerts");
  box.hidden = !alerts.length;
  box.textContent = alerts.length ? "drift alert: " + alerts.map((a) =>
    a.device + (a.features.length ? ` (${a.features.join(", ")})` : "")).join("; ") : "";
}

function renderEvents(events) {
  const ol = $("events");
  ol.replaceChildren(...events.map((e) => {
    const li = el("li", e.level, `${clock(e.ts)}  ${e.device}  ${e.kind}  ${detail(e.data)}`);
    if (/rollback|rolled_back/.test(e.kind)) li.classList.add("rollback");
    li.dataset.kind = e.kind;
    li.dataset.device = e.device;
    return li;
  }));
}

// -- deployments: whatever the fleet state exposes (phase, canaries, per-device steps) -----------------
function progress(dep) {
  const steps = dep.devices && typeof dep.devices === "object" ? Object.values(dep.devices) : [];
  const total = Array.isArray(dep.targets) && dep.targets.length ? dep.targets.length : steps.length;
  if (!total) return null;
  const done = steps.filter((s) => s === "promoted").length;
  const bar = el("span", "progress"), fill = el("span");
  fill.style.width = `${Math.min(100, 100 * done / total)}%`;
  bar.appendChild(fill);
  const wrap = el("span", null);
  wrap.append(bar, ` ${done}/${total} promoted`);
  return wrap;
}

function renderDeployments(deps) {
  const box = $("deployments");
  const list = Array.isArray(deps) ? deps : Object.entries(deps || {}).map(([id, d]) =>
    (d && typeof d === "object" ? { id, ...d } : { id, phase: d }));
  if (!list.length) { box.replaceChildren(el("p", "empty", "no deployments")); return; }
  const table = el("table");
  const head = el("tr");
  for (const h of ["deployment", "version", "phase", "progress", "canaries", "devices", "last step"]) {
    head.appendChild(el("th", null, h));
  }
  table.appendChild(head);
  list.sort((a, b) => (b.updated || 0) - (a.updated || 0));
  for (const d of list) {
    const tr = el("tr");
    const phase = d.phase ?? d.state ?? d.status ?? "";
    tr.dataset.deployment = d.id ?? "";
    tr.dataset.phase = phase;
    tr.appendChild(el("td", null, d.id ?? "?"));
    tr.appendChild(el("td", null, d.version ?? "-"));
    tr.appendChild(el("td", /roll|fail/.test(phase) ? "offline" : phase === "done" ? "online" : null, phase));
    const p = el("td"); const bar = progress(d); if (bar) p.appendChild(bar); tr.appendChild(p);
    tr.appendChild(el("td", null, Array.isArray(d.canaries) ? d.canaries.join(" ") : ""));
    const devs = el("td");
    for (const [dev, step] of Object.entries(d.devices || {}).sort()) {
      const ok = step === "promoted", bad = /roll|reject|fail|discard/.test(step);
      devs.appendChild(el("span", "chip " + (ok ? "ok" : bad ? "alert" : "unknown"), `${dev}:${step}`));
    }
    tr.appendChild(devs);
    const last = Array.isArray(d.steps) && d.steps.length ? d.steps[d.steps.length - 1] : null;
    tr.appendChild(el("td", null, last ? `${last.phase || ""} ${last.message || ""}` : ""));
    table.appendChild(tr);
  }
  box.replaceChildren(table);
}

// -- history plots ------------------------------------------------------------------------------------
async function select(name) {
  selected = name;
  for (const [n, tr] of rows) tr.classList.toggle("selected", n === name);
  $("detail").hidden = false;
  $("detail-device").textContent = name;
  await loadHistory();
}

async function loadHistory() {
  if (!selected) return;
  lastHistory = Date.now();
  const note = $("detail-note");
  if (state && !state.history) { note.textContent = "no recording: start the dashboard with --db FILE"; return; }
  const r = await fetch(`/api/history/${encodeURIComponent(selected)}`);
  const h = await r.json();
  if (!r.ok) { note.textContent = h.error || r.statusText; return; }
  note.textContent = `${h.messages} messages in the recording`;
  const warn = state ? state.psi_warn : 0.1, alert = state ? state.psi_alert : 0.25;
  EmberPlot.draw($("plot-drift"), Object.entries(h.psi).sort().map(([name, points]) => ({ name, points })),
    { log: true, hlines: [{ y: warn, color: "#b7791f" }, { y: alert, color: "#c62828" }] });
  EmberPlot.draw($("plot-latency"), [
    { name: "p50", points: h.latency.map((p) => [p[0], p[1]]) },
    { name: "p95", points: h.latency.map((p) => [p[0], p[2]]) }]);
  const cats = [...new Set(h.tier.map((p) => p[1]))].sort();
  EmberPlot.draw($("plot-tier"), [{ name: "tier", points: h.tier.map((p) => [p[0], cats.indexOf(p[1])]) }],
    { step: true, categories: cats });
}

// -- admin actions ------------------------------------------------------------------------------------
async function command(device, body) {
  const out = $("action-result");
  const token = $("token").value.trim();
  sessionStorage.setItem("ember-token", token);
  const r = await fetch("/api/command", {
    method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ device, ...body }),
  });
  const res = await r.json().catch(() => ({ error: r.statusText }));
  out.className = r.ok ? "ok" : "error";
  out.textContent = r.ok ? `${res.sent.cmd} sent to ${device}` : `${r.status}: ${res.error}`;
}

// deploy a signed bundle: the file is the request body, the options go in the query string (empty: the
// fleet controller's defaults); the deployment's progress then comes through the stream
const DEPLOY_OPTS = { canary: "deploy-canary", soak_s: "deploy-soak", baseline_s: "deploy-baseline",
  max_p95_ratio: "deploy-p95-ratio", max_errors: "deploy-errors", delivery: "deploy-delivery", url: "deploy-url" };

async function deploy(ev) {
  ev.preventDefault();
  const out = $("deploy-result");
  const file = $("deploy-bundle").files[0];
  if (!file) { out.className = "error"; out.textContent = "choose a signed bundle (ember models pack) first"; return; }
  const q = new URLSearchParams({ name: file.name });
  for (const [k, id] of Object.entries(DEPLOY_OPTS)) { const v = $(id).value.trim(); if (v) q.set(k, v); }
  const token = $("token").value.trim();
  sessionStorage.setItem("ember-token", token);
  out.className = ""; out.textContent = `uploading ${file.name}…`;
  const r = await fetch(`/api/deploy?${q}`, {
    method: "POST", headers: { "content-type": "application/octet-stream", authorization: `Bearer ${token}` },
    body: file,
  }).catch((e) => ({ ok: false, status: 0, statusText: String(e), json: async () => ({}) }));
  const res = await r.json().catch(() => ({}));
  out.className = r.ok ? "ok" : "error";
  out.textContent = r.ok ? `deployment ${res.deployment.deployment} of ${res.deployment.version} started`
    : `${r.status}: ${res.error || r.statusText}`;
}

function renderJob(job) {
  const span = $("deploy-job");
  span.className = job && job.error ? "error" : "";
  span.textContent = !job || !job.deployment ? "" : job.running ? `${job.deployment}: running`
    : `${job.deployment}: ${job.phase}${job.error ? " - " + job.error : job.reason ? " - " + job.reason : ""}`;
}

// -- the stream ---------------------------------------------------------------------------------------
function update(snap) {
  state = snap;
  $("fleet").textContent = snap.fleet;
  const online = snap.devices.filter((d) => d.online).length;
  $("counts").textContent = `${snap.devices.length} devices, ${online} online, ${snap.alerts.length} in drift alert`;
  document.body.classList.toggle("admin", !!snap.admin);
  $("admin").hidden = !snap.admin;
  $("deploy").hidden = !snap.admin;
  renderJob(snap.deploy_job);
  renderDevices(snap.devices);
  renderAlerts(snap.alerts);
  renderEvents(snap.events);
  renderDeployments(snap.deployments);
  if (selected && Date.now() - lastHistory > 10000) loadHistory();
}

function connect() {
  const es = new EventSource("/api/stream");
  es.onopen = () => { $("conn").textContent = "live"; $("conn").className = "badge on"; };
  es.onerror = () => { $("conn").textContent = "reconnecting…"; $("conn").className = "badge off"; };
  es.onmessage = (e) => update(JSON.parse(e.data));
}

function init() {
  const m = location.hash.match(/token=([^&]+)/);
  if (m) { sessionStorage.setItem("ember-token", decodeURIComponent(m[1])); history.replaceState(null, "", "/"); }
  $("token").value = sessionStorage.getItem("ember-token") || "";
  $("deploy").onsubmit = deploy;
  connect();
}
init();
