// Tyk Inspector dashboard: a live, filterable list of captures fed by /api/stream,
// and the detail of the selected one. No framework, no build step.
import { renderDetail } from "./detail.js";
import { el, formatBytes, formatTime, text } from "./dom.js";
import { CaptureList } from "./list.js";

const $ = (id) => document.getElementById(id);
const MAX_KEPT = 100_000; // summaries kept in the page; the server's buffer is usually smaller

const state = {
  all: [],            // every summary received, oldest first
  byId: new Map(),
  lastId: 0,          // newest capture id seen: where a reconnect resumes
  paused: false,
  waiting: [],        // captures that arrived while paused
  filters: {},
  serverMatches: null, // ids matching the text search on the server (it searches bodies too)
  selectedId: null,
};

const list = new CaptureList($("list"), $("list-spacer"), { onSelect: (id) => select(id) });

// --- filters ------------------------------------------------------------------------------

function readFilters() {
  const data = new FormData($("filters"));
  const filters = {};
  for (const [key, value] of data.entries()) if (String(value).trim()) filters[key] = String(value).trim();
  return filters;
}

function matches(c) {
  const f = state.filters;
  if (f.kind && c.kind !== f.kind) return false;
  if (f.hook_type && c.hook_type.toLowerCase() !== f.hook_type.toLowerCase()) return false;
  if (f.hook_name && !c.hook_name.toLowerCase().includes(f.hook_name.toLowerCase())) return false;
  if (f.api_id && !c.api_id.toLowerCase().includes(f.api_id.toLowerCase())) return false;
  if (f.method && c.method.toUpperCase() !== f.method.toUpperCase()) return false;
  if (f.status && String(c.status) !== f.status) return false;
  if (f.modified && !c.modified) return false;
  if (f.warnings && !(c.warnings && c.warnings.length)) return false;
  if (f.q && !(state.serverMatches?.has(c.id) ?? false)) return false;
  return true;
}

function serverQuery(filters) {
  const params = new URLSearchParams();
  for (const key of ["kind", "hook_type", "method", "status", "q", "modified", "warnings"]) if (filters[key]) params.set(key, filters[key]);
  return params;
}

let searchSeq = 0;
async function refreshServerMatches(afterId = 0) {
  // Free text also matches header values, bodies and sessions, which only the server holds.
  const q = state.filters.q;
  if (!q) { state.serverMatches = null; return; }
  const seq = ++searchSeq;
  const params = new URLSearchParams({ q, limit: "10000" });
  if (afterId) params.set("after", String(afterId));
  const res = await fetch(`/api/captures?${params}`);
  if (!res.ok || seq !== searchSeq) return;
  const ids = (await res.json()).items.map((c) => c.id);
  if (!afterId || !state.serverMatches) state.serverMatches = new Set(ids);
  else ids.forEach((id) => state.serverMatches.add(id));
}

async function applyFilters() {
  state.filters = readFilters();
  await refreshServerMatches();
  list.setItems(state.all.filter(matches));
  updateExportLinks();
  updateCounts();
}

let filterTimer = 0;
$("filters").addEventListener("input", () => {
  clearTimeout(filterTimer);
  filterTimer = setTimeout(applyFilters, 150);
});
$("filters").addEventListener("reset", () => setTimeout(applyFilters, 0));
$("filters").addEventListener("submit", (e) => { e.preventDefault(); applyFilters(); });

// --- live stream --------------------------------------------------------------------------

let pending = [];
let frameRequested = false;
let lastSearch = 0;

function receive(summary) {
  if (state.paused) {
    state.waiting.push(summary);
    updateWaiting();
    return;
  }
  pending.push(summary);
  scheduleFlush();
}

function scheduleFlush(delay = 0) {
  if (frameRequested) return;
  frameRequested = true;
  // One DOM update per frame, however many captures arrived.
  if (delay > 0) setTimeout(() => requestAnimationFrame(flush), delay);
  else requestAnimationFrame(flush);
}

async function flush() {
  frameRequested = false;
  if (!pending.length) return;
  if (state.filters.q) {
    // The server checks new captures against the text search, a few times a second at most.
    const wait = lastSearch + 250 - performance.now();
    if (wait > 0) { scheduleFlush(wait); return; }
    lastSearch = performance.now();
    const batch = pending;
    pending = [];
    await refreshServerMatches(batch[0].id - 1);
    commit(batch);
  } else {
    const batch = pending;
    pending = [];
    commit(batch);
  }
}

function commit(batch) {
  const fresh = batch.filter((c) => !state.byId.has(c.id));
  for (const c of fresh) {
    state.all.push(c);
    state.byId.set(c.id, c);
  }
  list.append(fresh.filter(matches));
  trim();
  $("empty").hidden = state.all.length > 0;
  updateCounts();
}

function trim() {
  if (state.all.length <= MAX_KEPT) return;
  const removed = state.all.splice(0, state.all.length - MAX_KEPT);
  removed.forEach((c) => state.byId.delete(c.id));
  list.setItems(state.all.filter(matches));
}

function clearAll() {
  state.all = [];
  state.byId.clear();
  state.waiting = [];
  pending = [];
  state.serverMatches = state.filters.q ? new Set() : null;
  list.setItems([]);
  $("empty").hidden = false;
  $("detail").replaceChildren(text("p", "The buffer was cleared.", { class: "muted placeholder" }));
  state.selectedId = null;
  updateWaiting();
  updateCounts();
}

let source = null;

function connect() {
  setConnection("connecting", "connecting…");
  source = new EventSource(`/api/stream?after=${state.lastId}`);
  source.addEventListener("open", () => setConnection("live", "live"));
  source.addEventListener("ready", () => setConnection("live", "live"));
  source.addEventListener("capture", (e) => {
    const summary = JSON.parse(e.data);
    state.lastId = Math.max(state.lastId, summary.id);
    receive(summary);
  });
  source.addEventListener("gap", (e) => {
    const gap = JSON.parse(e.data);
    notice(`${gap.missed} capture(s) (#${gap.from}–#${gap.to}) left the server's buffer before this page could show them.`);
  });
  source.addEventListener("clear", (e) => {
    state.lastId = Math.max(state.lastId, JSON.parse(e.data).last_id);
    clearAll();
  });
  source.addEventListener("error", () => {
    // EventSource retries by itself (sending Last-Event-ID); if it gave up, start a new one
    // that resumes after the newest capture shown.
    setConnection("reconnecting", "reconnecting…");
    if (source.readyState === EventSource.CLOSED) setTimeout(connect, 1000);
  });
}

function setConnection(state_, label) {
  const pill = $("connection");
  pill.dataset.state = state_;
  pill.textContent = label;
}

// --- selection and detail -----------------------------------------------------------------

const detailCache = new Map();

async function select(id, { scroll = true } = {}) {
  state.selectedId = id;
  list.setSelected(id, scroll);
  history.replaceState(null, "", `#capture=${id}`);
  updateExportLinks();
  let detail = detailCache.get(id);
  if (!detail) {
    const res = await fetch(`/api/captures/${id}`);
    const body = await res.json();
    if (!res.ok) {
      $("detail").replaceChildren(text("p", body.detail, { class: "error-text" }));
      return;
    }
    detail = body;
    detailCache.set(id, detail);
    if (detailCache.size > 50) detailCache.delete(detailCache.keys().next().value);
  }
  if (state.selectedId === id) renderDetail($("detail"), detail);
}

function selectFromHash() {
  const match = /capture=(\d+)/.exec(location.hash);
  if (match) select(Number(match[1]));
}
window.addEventListener("hashchange", selectFromHash);

// --- controls -----------------------------------------------------------------------------

$("pause").addEventListener("click", () => {
  state.paused = !state.paused;
  $("pause").setAttribute("aria-pressed", String(state.paused));
  $("pause").textContent = state.paused ? "Resume" : "Pause";
  if (!state.paused) {
    const waiting = state.waiting;
    state.waiting = [];
    waiting.forEach(receive);
  }
  updateWaiting();
});

$("clear").addEventListener("click", async () => {
  const res = await fetch("/api/captures", { method: "DELETE" });
  if (!res.ok) notice(`Clear failed: ${(await res.json()).detail}`);
});

$("import-file").addEventListener("change", async (e) => {
  const file = e.target.files[0];
  e.target.value = "";
  if (!file) return;
  const res = await fetch("/api/import", { method: "POST", body: file, headers: { "Content-Type": "application/json" } });
  const body = await res.json();
  notice(res.ok ? `Imported ${body.imported} capture(s) from ${file.name}.` : `Import failed: ${body.detail}`);
});

$("export-button").addEventListener("click", () => {
  const menu = $("export-menu");
  menu.hidden = !menu.hidden;
  $("export-button").setAttribute("aria-expanded", String(!menu.hidden));
});
$("export-menu").addEventListener("click", (e) => {
  if (e.target.getAttribute("aria-disabled") === "true") e.preventDefault();
  $("export-menu").hidden = true;
});

function updateExportLinks() {
  const params = serverQuery(state.filters);
  for (const key of ["hook_name", "api_id"]) if (state.filters[key]) params.set(key, state.filters[key]);
  $("export-filtered").href = `/api/export?${params}`;
  const selected = $("export-selected");
  if (state.selectedId !== null) {
    selected.href = `/api/captures/${state.selectedId}/export`;
    selected.setAttribute("aria-disabled", "false");
  } else {
    selected.href = "#";
    selected.setAttribute("aria-disabled", "true");
  }
}

function updateCounts() {
  const shown = list.items.length;
  const total = state.all.length;
  $("counts").textContent = shown === total ? `${total} captures` : `${shown} of ${total} captures`;
}

function updateWaiting() {
  const waiting = $("waiting");
  waiting.hidden = !state.paused;
  waiting.textContent = `${state.waiting.length} waiting`;
}

let noticeTimer = 0;
function notice(message) {
  const box = $("notice");
  box.replaceChildren(text("span", message), el("button", { type: "button", class: "link", onclick: () => { box.hidden = true; } }, "dismiss"));
  box.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { box.hidden = true; }, 15000);
}

document.addEventListener("keydown", (e) => {
  const typing = e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement;
  if (e.key === "Escape") {
    $("filters").reset();
    $("search").blur();
    $("export-menu").hidden = true;
    return;
  }
  if (typing) return;
  if (e.key === "/") {
    e.preventDefault();
    $("search").focus();
  } else if (e.key === "ArrowDown" || e.key === "j") {
    e.preventDefault();
    const id = list.neighbour(state.selectedId, +1);
    if (id !== null) select(id);
  } else if (e.key === "ArrowUp" || e.key === "k") {
    e.preventDefault();
    const id = list.neighbour(state.selectedId, -1);
    if (id !== null) select(id);
  }
});

// --- start --------------------------------------------------------------------------------

async function start() {
  // The newest page of the buffer first, then the stream from just after it.
  const res = await fetch("/api/captures?limit=10000");
  const page = await res.json();
  const items = page.items.reverse();
  for (const c of items) {
    state.all.push(c);
    state.byId.set(c.id, c);
  }
  state.lastId = page.last_id;
  state.filters = readFilters();
  list.setItems(state.all.filter(matches));
  $("empty").hidden = state.all.length > 0;
  updateCounts();
  updateExportLinks();
  connect();
  selectFromHash();
}

window.tykInspector = { state, formatBytes, formatTime }; // for the curious, in the console
start();
