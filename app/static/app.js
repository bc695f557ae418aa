// Tyk Inspector dashboard: a live, filterable list of captures fed by /api/stream,
// and the detail of the selected one. No framework, no build step.
import { Connection } from "./connection.js";
import { renderDetail } from "./detail.js";
import { button, el, formatBytes, formatTime, statusRank, text } from "./dom.js";
import { FilterError, Filters } from "./filters.js";
import { fetchJourneys, groupedItems } from "./group.js";
import { markStale, saveKept } from "./kept.js";
import { installKeys } from "./keys.js";
import { CaptureList, keyOf } from "./list.js";
import { menuButton } from "./menu.js";
import { installTransfer } from "./transfer.js";

const $ = (id) => document.getElementById(id);
const MAX_KEPT = 100_000; // summaries kept in the page; the server's buffer is usually smaller

const state = {
  all: [],            // every summary received, oldest first
  byKey: new Map(),
  lastId: 0,          // newest capture id seen from this inspector process: where a reconnect resumes
  paused: false,
  waiting: [],        // captures that arrived while paused, at most maxWaiting
  maxWaiting: 10_000, // past this, resuming reads them from the server's buffer instead
  waitingCount: 0,    // how many arrived while paused, kept or not
  matches: null,      // ids the server says match the filters; null: no filter
  selectedKey: null,
  restarts: 0,
  appliedFilter: "{}",
  journeys: null,     // grouped by request: the journeys the server correlated, oldest first
  expanded: new Set(), // journey ids shown with their hook calls
};

const filters = new Filters($("filters"));
const list = new CaptureList($("list"), $("list-spacer"), {
  onSelect: (key) => {
    select(key);
    if (key.startsWith("j")) expand(null); // a click on a request's row opens or closes it
  },
});
const connection = new Connection({
  pill: $("connection"),
  banner: $("banner"),
  lastId: () => state.lastId,
  onCapture: (summary) => {
    state.lastId = Math.max(state.lastId, summary.id);
    receive(summary);
  },
  onGap: (gap) => notice(`${gap.missed} capture(s) (#${gap.from}–#${gap.to}) left the server's buffer before this page could show them.`),
  onClear: (clear) => {
    state.lastId = Math.max(state.lastId, clear.last_id);
    clearAll();
  },
  onRestart: () => keepAfterRestart(),
});

// --- what the list shows ------------------------------------------------------------------

function matches(c) {
  if (state.matches === null) return true;
  return !c.stale && state.matches.has(c.id);
}

const SORT_VALUE = {
  duration: (c) => c.duration_ms ?? 0,
  size: (c) => c.size ?? 0,
  status: statusRank,
};

function visible() {
  if (filters.group && state.journeys) {
    return groupedItems(state.journeys, state.expanded, (id) => state.byKey.get(String(id)), state.all.filter(matches));
  }
  const shown = state.all.filter(matches);
  const { key, desc } = filters.sort;
  const value = SORT_VALUE[key];
  // Array order is time order; ties keep it (sort is stable).
  if (value) shown.sort(desc ? (a, b) => value(b) - value(a) : (a, b) => value(a) - value(b));
  else if (desc) shown.reverse();
  return shown;
}

const timeOrder = () => (filters.group || filters.sort.key === "time") && !filters.sort.desc;

function showList() {
  list.setItems(visible(), { followNewest: timeOrder() });
  updateEmpty();
  updateCounts();
}

function updateEmpty() {
  const nothing = state.all.length === 0;
  $("empty").hidden = !nothing;
  const none = $("no-match");
  const noMatch = !nothing && list.items.length === 0;
  none.hidden = !noMatch;
  if (noMatch) {
    none.replaceChildren(
      text("p", filters.values.q
        ? `No capture matches “${filters.values.q}”${Object.keys(filters.values).length > 1 ? " with these filters" : ""}.`
        : "No capture matches these filters."),
      button("Reset filters", () => resetFilters()));
  }
}

// --- filters ------------------------------------------------------------------------------

async function applyFilters() {
  filters.read();
  filters.saveToUrl();
  updateExportLinks();
  setFilterError(null);
  if (!filters.active) {
    filters.cancel();
    state.matches = null;
  } else {
    try {
      const ids = await filters.matchingIds();
      if (ids === null) return; // a newer filter is on its way
      state.matches = ids;
    } catch (err) {
      if (err instanceof FilterError) setFilterError(err.message);
      else { setFilterError("The inspector is not answering: the filter cannot be applied."); connection.reportFailure(); }
      return;
    }
  }
  if (filters.group) await refreshJourneys();
  showList();
  await filters.loadHighlights();
  rerenderDetail();
  state.appliedFilter = JSON.stringify(filters.values); // what the list shows now (benchmarks wait on it)
}

function setFilterError(message) {
  const box = $("filter-error");
  box.textContent = message || "";
  box.hidden = !message;
  $("search").setAttribute("aria-invalid", message ? "true" : "false");
}

function resetFilters() {
  if (!filters.active) return false;
  $("filters").reset();
  return true;
}

let filterTimer = 0;
let lastInput = 0;
$("filters").addEventListener("input", () => {
  clearTimeout(filterTimer);
  // The first keystroke asks at once; keystrokes coming faster than that are gathered, so typing
  // fast asks the server once per pause rather than once per letter.
  const now = performance.now();
  const burst = now - lastInput < 150;
  lastInput = now;
  if (burst) filterTimer = setTimeout(applyFilters, 60);
  else applyFilters();
});
$("filters").addEventListener("reset", () => setTimeout(applyFilters, 0));
$("filters").addEventListener("submit", (e) => { e.preventDefault(); clearTimeout(filterTimer); applyFilters(); });

function setSort(key) {
  const same = filters.sort.key === key;
  // Time starts oldest first (the live order); the others start with the largest.
  filters.sort = { key, desc: same ? !filters.sort.desc : key !== "time" };
  filters.saveToUrl();
  updateSortButtons();
  showList();
  if (state.selectedKey !== null) list.setSelected(state.selectedKey, true);
}

function updateSortButtons() {
  for (const b of document.querySelectorAll("[data-sort]")) {
    const on = b.dataset.sort === filters.sort.key;
    b.setAttribute("aria-pressed", String(on));
    b.dataset.direction = on ? (filters.sort.desc ? "desc" : "asc") : "";
    const header = b.closest("[role='columnheader']");
    if (header) header.setAttribute("aria-sort", on ? (filters.sort.desc ? "descending" : "ascending") : "none");
  }
}
for (const b of document.querySelectorAll("[data-sort]")) b.addEventListener("click", () => setSort(b.dataset.sort));

// --- live stream --------------------------------------------------------------------------

let pending = [];
let frameRequested = false;
let lastSearch = 0;

function receive(summary) {
  if (state.paused) {
    state.waitingCount += 1;
    if (state.waiting.length < state.maxWaiting) state.waiting.push(summary);
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
  if (state.matches !== null) {
    // The server checks new captures against the filters, a few times a second at most.
    const wait = lastSearch + 250 - performance.now();
    if (wait > 0) { scheduleFlush(wait); return; }
    lastSearch = performance.now();
    const batch = pending;
    pending = [];
    try {
      const ids = await filters.matchingIds(batch[0].id - 1);
      if (ids !== null && state.matches !== null) ids.forEach((id) => state.matches.add(id));
    } catch {
      connection.reportFailure();
    }
    commit(batch);
  } else {
    const batch = pending;
    pending = [];
    commit(batch);
  }
}

function commit(batch) {
  const fresh = batch.filter((c) => !state.byKey.has(keyOf(c)));
  for (const c of fresh) {
    state.all.push(c);
    state.byKey.set(keyOf(c), c);
  }
  if (state.all.length > MAX_KEPT) {
    const removed = state.all.splice(0, state.all.length - MAX_KEPT);
    removed.forEach((c) => state.byKey.delete(keyOf(c)));
    showList();
  } else if (filters.group) {
    scheduleJourneys();
  } else if (timeOrder()) {
    list.append(fresh.filter(matches));
    updateEmpty();
    updateCounts();
  } else {
    showList();
  }
}

function clearAll() {
  state.all = state.all.filter((c) => c.stale); // kept from before a restart: the server never had them
  state.byKey = new Map(state.all.map((c) => [keyOf(c), c]));
  state.waiting = [];
  state.waitingCount = 0;
  pending = [];
  if (state.matches !== null) state.matches = new Set();
  showList();
  if (!state.byKey.has(state.selectedKey)) {
    $("detail").replaceChildren(text("p", "The buffer was cleared.", { class: "muted placeholder" }));
    state.selectedKey = null;
  }
  updateWaiting();
  updateExportLinks();
}

/** The inspector came back as a new process: keep what the page had, marked, and offer it as a file. */
function keepAfterRestart() {
  state.restarts += 1;
  state.selectedKey = markStale(state.all, detailCache, state.restarts, state.selectedKey);
  state.byKey = new Map(state.all.map((c) => [keyOf(c), c]));
  state.lastId = 0;
  pending = [];
  const kept = state.all.length;
  showList();
  if (state.selectedKey !== null) list.setSelected(state.selectedKey, false);
  if (kept) connection.showRestarted(kept, exportKept, discardKept);
  if (filters.active) applyFilters();
}

function exportKept() {
  const stale = state.all.filter((c) => c.stale);
  const full = saveKept(stale, detailCache);
  notice(`Saved ${stale.length} capture(s): ${full} with their full content (the ones opened here), the rest as summaries.`);
}

function discardKept() {
  state.all = state.all.filter((c) => !c.stale);
  state.byKey = new Map(state.all.map((c) => [keyOf(c), c]));
  for (const key of [...detailCache.keys()]) if (!state.byKey.has(key)) detailCache.delete(key);
  showList();
}

// --- selection and detail -----------------------------------------------------------------

const detailCache = new Map(); // key -> detail JSON, the most recent last
const DETAIL_CACHE_SIZE = 50;

/** The summary behind a list key: a capture, a capture under its request, or a request's first capture. */
function summaryFor(key) {
  const direct = state.byKey.get(key);
  if (direct) return direct;
  const item = list.items[list.index.get(key)];
  if (!item) return undefined;
  return item.journey ? state.byKey.get(String(item.journey.capture_ids[0])) : state.byKey.get(String(item.id)) ?? item;
}

async function select(key, { scroll = true } = {}) {
  const item = list.items[list.index.get(key)];
  if (item?.journey) $("detail").dataset.tab = "journey"; // a request's row shows its journey
  const summary = summaryFor(key);
  const cacheKey = summary && !summary.stale ? String(summary.id) : key;
  state.selectedKey = key;
  list.setSelected(key, scroll);
  if (summary && !summary.stale) history.replaceState(null, "", `${location.pathname}${location.search}#capture=${summary.id}`);
  updateExportLinks();
  let detail = detailCache.get(cacheKey);
  if (!detail && summary?.stale) {
    $("detail").replaceChildren(staleDetail(summary));
    return;
  }
  if (!detail) {
    const id = summary ? summary.id : Number(key);
    let res;
    try {
      res = await fetch(`/api/captures/${id}`);
    } catch {
      if (state.selectedKey === key) {
        $("detail").replaceChildren(text("p", `Capture #${id} could not be loaded: the inspector is not answering.`, { class: "error-text", role: "alert" }));
      }
      connection.reportFailure();
      return;
    }
    const body = await res.json().catch(() => ({ detail: `the inspector answered ${res.status}` }));
    if (!res.ok) {
      if (state.selectedKey === key) $("detail").replaceChildren(text("p", body.detail, { class: "error-text", role: "alert" }));
      return;
    }
    detail = body;
    detailCache.set(cacheKey, detail);
    if (detailCache.size > DETAIL_CACHE_SIZE) {
      // Details of captures kept from before a restart are all that is left of them: evict others first.
      const victim = [...detailCache.keys()].find((k) => !state.byKey.get(k)?.stale) ?? detailCache.keys().next().value;
      detailCache.delete(victim);
    }
  }
  if (state.selectedKey === key) show(detail);
}

function show(detail) {
  renderDetail($("detail"), detail, {
    highlight: filters.highlightTerms(),
    summaryOf: (id) => state.byKey.get(String(id)),
    open: (id) => select(String(id)),
  });
}

function rerenderDetail() {
  const summary = summaryFor(state.selectedKey);
  const detail = detailCache.get(summary && !summary.stale ? String(summary.id) : state.selectedKey);
  if (detail) show(detail);
}

function staleDetail(c) {
  return el("div", {},
    el("header", { class: "detail-head" },
      text("h2", `${c.hook_type || c.kind} · ${c.hook_name || ""}`),
      text("p", `#${c.id} · ${formatTime(c.received_at)} · ${formatBytes(c.size)}`, { class: "muted small" })),
    text("p", "This capture was in the inspector before it restarted. This page had only its summary, not its content.", { class: "muted" }));
}

function selectFromHash() {
  const match = /capture=(\d+)/.exec(location.hash);
  if (match) select(match[1]);
}
window.addEventListener("hashchange", selectFromHash);

// --- grouping by request -----------------------------------------------------------------

let journeysTimer = 0;
function scheduleJourneys() {
  if (journeysTimer) return;
  // The server correlates new captures a few times a second at most, however many arrive.
  journeysTimer = setTimeout(async () => { journeysTimer = 0; await refreshJourneys(); showList(); }, 300);
}

async function refreshJourneys() {
  try {
    state.journeys = await fetchJourneys(filters.params());
  } catch (err) {
    setFilterError(`Grouping by request failed: ${err.message}`);
    state.journeys = null;
  }
}

async function setGrouping(on) {
  filters.group = on;
  $("group").setAttribute("aria-pressed", String(on));
  filters.saveToUrl();
  if (on) await refreshJourneys();
  showList();
  if (state.selectedKey !== null) list.setSelected(state.selectedKey, true);
}
$("group").addEventListener("click", () => setGrouping(!filters.group));

/** Open (true), close (false) or toggle (null) the selected request's row. */
function expand(open) {
  const item = list.items[list.index.get(state.selectedKey)];
  if (!item?.journey) return;
  const id = item.journey.id;
  const now = open ?? !state.expanded.has(id);
  if (now) state.expanded.add(id);
  else state.expanded.delete(id);
  showList();
  list.setSelected(state.selectedKey, true);
}

function move(delta) {
  let step = delta;
  if (delta === "page") step = list.pageSize();
  else if (delta === "-page") step = -list.pageSize();
  const key = list.neighbour(state.selectedKey, step);
  if (key !== null) select(key);
}

// --- controls -----------------------------------------------------------------------------

$("pause").addEventListener("click", async () => {
  state.paused = !state.paused;
  $("pause").setAttribute("aria-pressed", String(state.paused));
  $("pause").textContent = state.paused ? "Resume" : "Pause";
  if (!state.paused) {
    const overflowed = state.waitingCount > state.waiting.length;
    const waiting = state.waiting;
    state.waiting = [];
    state.waitingCount = 0;
    updateWaiting();
    if (overflowed) await catchUp();
    else waiting.forEach(receive);
  }
  updateWaiting();
});

/** After a long pause: read what arrived from the server's buffer instead of from memory. */
async function catchUp() {
  const shown = state.all.filter((c) => !c.stale);
  let after = shown.length ? shown[shown.length - 1].id : 0;
  for (;;) {
    const res = await fetch(`/api/captures?after=${after}&limit=10000`).catch(() => null);
    if (!res || !res.ok) { connection.reportFailure(); return; }
    const page = await res.json();
    page.items.forEach(receive);
    if (!page.next_after) return;
    after = page.next_after;
  }
}

installTransfer(
  { importFile: $("import-file"), clear: $("clear"), dialog: $("clear-dialog"), count: $("clear-count") },
  { liveCount: () => state.all.filter((c) => !c.stale).length, notice, unreachable: () => connection.reportFailure() },
);

menuButton($("export-button"), $("export-menu"), { onOpen: updateExportLinks });

function updateExportLinks() {
  const params = filters.params();
  $("export-filtered").href = `/api/export?${params}`;
  const har = new URLSearchParams(params);
  har.set("format", "har");
  $("export-har").href = `/api/export?${har}`;
  const selected = $("export-selected");
  const summary = state.byKey.get(state.selectedKey);
  if (summary && !summary.stale) {
    selected.href = `/api/captures/${summary.id}/export`;
    selected.setAttribute("aria-disabled", "false");
  } else {
    selected.href = "#";
    selected.setAttribute("aria-disabled", "true");
  }
}

function updateCounts() {
  const total = state.all.length;
  if (filters.group && state.journeys) {
    $("counts").textContent = `${state.journeys.length} requests · ${total} captures`;
    return;
  }
  const shown = list.items.length;
  $("counts").textContent = shown === total ? `${total} captures` : `${shown} of ${total} captures`;
}

function updateWaiting() {
  const waiting = $("waiting");
  waiting.hidden = !state.paused;
  waiting.textContent = `${state.waitingCount} waiting`;
}

let noticeTimer = 0;
function notice(message) {
  const box = $("notice");
  box.replaceChildren(text("span", message), el("button", { type: "button", class: "link", onclick: () => { box.hidden = true; } }, "dismiss"));
  box.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { box.hidden = true; }, 15000);
}

installKeys({
  move,
  expand,
  search: () => $("search").focus(),
  resetFilters,
});

// On a small screen the list shrinks when the detail opens below it: keep the selected row in view.
new ResizeObserver(() => list.revealSelected()).observe($("list"));

// --- start --------------------------------------------------------------------------------

async function start() {
  filters.loadFromUrl();
  updateSortButtons();
  $("group").setAttribute("aria-pressed", String(filters.group));
  let page;
  let stats;
  try {
    // The newest page of the buffer first, then the stream from just after it.
    const [res, statsRes] = await Promise.all([fetch("/api/captures?limit=10000"), fetch("/api/stats")]);
    page = await res.json();
    stats = await statsRes.json();
  } catch {
    connection.showDown();
    connection.probe();
    return;
  }
  connection.know(stats);
  const items = page.items.reverse();
  for (const c of items) {
    state.all.push(c);
    state.byKey.set(keyOf(c), c);
  }
  state.lastId = page.last_id;
  updateExportLinks();
  if (filters.active) await applyFilters();
  else {
    if (filters.group) await refreshJourneys();
    showList();
  }
  connection.connect();
  selectFromHash();
}

// For the curious, in the console (and for the benchmarks: `forget` drops a cached detail).
window.tykInspector = { state, filters, formatBytes, formatTime, forget: (id) => detailCache.delete(String(id)) };
start();
