// Tyk Inspector dashboard: a live, filterable list of captures fed by /api/stream,
// and the detail of the selected one. No framework, no build step.
import { installCatalog } from "./catalog.js";
import { Connection } from "./connection.js";
import { button, formatBytes, formatTime, text } from "./dom.js";
import { FilterError, Filters, sortItems } from "./filters.js";
import { fetchJourneys, groupedItems } from "./group.js";
import { markStale, saveKept } from "./kept.js";
import { installIntercept } from "./intercept.js";
import { installKeys } from "./keys.js";
import { installColumns } from "./columns.js";
import { CaptureList, keyOf } from "./list.js";
import { menuButton } from "./menu.js";
import { NewPill } from "./newpill.js";
import { loadPins } from "./pins.js";
import { installPause } from "./pause.js";
import { Selection } from "./selection.js";
import {
  notice, updateCounts as setCounts, updateExportLinks as setExportLinks, updateSortButtons, updateWaiting as setWaiting,
} from "./toolbar.js";
import { installTransfer } from "./transfer.js";
import { watchStore } from "./storehealth.js";

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
const intercept = installIntercept();
connection.onSource = (source) => intercept.listen(source);
const selection = new Selection($("detail"), {
  state, list, filters, onSelected: () => updateExportLinks(), unreachable: () => connection.reportFailure(),
});
const detailCache = selection.cache;

// --- what the list shows ------------------------------------------------------------------

function matches(c) {
  if (state.matches === null) return true;
  return !c.stale && state.matches.has(c.id);
}

function visible() {
  if (filters.group && state.journeys) {
    return groupedItems(state.journeys, state.expanded, (id) => state.byKey.get(String(id)), state.all.filter(matches));
  }
  return sortItems(state.all.filter(matches), filters.sort);
}

const timeOrder = () => (filters.group || filters.sort.key === "time") && !filters.sort.desc;

// "N new ↓" while the list is scrolled away from the newest captures (time order only).
const newPill = new NewPill($("new-pill"), list, () => {
  if (filters.group || filters.sort.key !== "time") return null;
  return filters.sort.desc ? "desc" : "asc";
});

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
      text("p", `No capture matches ${describeFilters(filters.values)}.`),
      button("Reset filters", () => resetFilters()));
  }
}

// --- filters ------------------------------------------------------------------------------

const FILTER_LABELS = { kind: "kind", hook_type: "hook type", method: "method", status: "status" };

/** “q” with status 4xx, modified: the filters as a reader would say them. */
function describeFilters(values) {
  const parts = [];
  for (const [key, value] of Object.entries(values)) {
    if (key === "q") continue;
    if (value === "true") parts.push(key === "warnings" ? "with warnings" : key);
    else parts.push(`${FILTER_LABELS[key] ?? key} ${value}`);
  }
  if (!values.q) return parts.length ? parts.join(", ") : "these filters";
  return `“${values.q}”${parts.length ? ` with ${parts.join(", ")}` : ""}`;
}

/** Show what the filters match; `superseded()` tells that they changed again meanwhile. */
async function applyFilters(superseded = () => false) {
  filters.read();
  filters.saveToUrl();
  updateExportLinks();
  setFilterError(null);
  // What to mark in the detail is asked for beside the matching ids, not after them.
  const highlights = filters.loadHighlights();
  if (!filters.active) {
    filters.cancel();
    state.matches = null;
  } else {
    try {
      const ids = await filters.matchingIds();
      if (ids === null || superseded()) return; // a newer filter is on its way
      state.matches = ids;
    } catch (err) {
      if (err instanceof FilterError) setFilterError(err.message);
      else { setFilterError("The inspector is not answering: the filter cannot be applied."); connection.reportFailure(); }
      return;
    }
  }
  if (filters.group) await refreshJourneys();
  showList();
  await highlights;
  selection.rerender();
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

// Each change is answered at once, with at most one answer on its way: changes made meanwhile
// (typing faster than the server answers) are gathered into the next one. No timer: the last
// keystroke is answered as soon as the answer before it is in.
let applying = null;
let changedMeanwhile = false;
function requestFilters() {
  if (applying) {
    changedMeanwhile = true;
    return applying;
  }
  applying = (async () => {
    do {
      changedMeanwhile = false;
      await applyFilters(() => changedMeanwhile);
    } while (changedMeanwhile);
  })().finally(() => { applying = null; });
  return applying;
}
$("filters").addEventListener("input", () => requestFilters());
$("filters").addEventListener("reset", () => setTimeout(requestFilters, 0));
$("filters").addEventListener("submit", (e) => { e.preventDefault(); requestFilters(); });

function setSort(key) {
  const same = filters.sort.key === key;
  // Time starts oldest first (the live order); the others start with the largest.
  filters.sort = { key, desc: same ? !filters.sort.desc : key !== "time" };
  filters.saveToUrl();
  updateSortButtons(filters.sort);
  showList();
  // After a sort the list shows its first row (the largest, or the newest), not where it was scrolled.
  newPill.reset();
  list.scrollToStart();
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
  // While the filters change, new captures wait, to be checked against the new ones.
  if (applying) { scheduleFlush(50); return; }
  if (state.matches !== null) {
    // The server checks new captures against the filters, a few times a second at most.
    const wait = lastSearch + 250 - performance.now();
    if (wait > 0) { scheduleFlush(wait); return; }
    lastSearch = performance.now();
    const batch = pending;
    pending = [];
    let ids = null;
    let failed = false;
    try {
      ids = await filters.matchingIds(batch[0].id - 1);
    } catch (err) {
      failed = true;
      if (!(err instanceof FilterError)) connection.reportFailure(); // a bad filter is shown where it is typed
    }
    if (ids === null && !failed && state.matches !== null) {
      // The filters changed while these were being checked: check them again against the new ones.
      pending = batch.concat(pending);
      scheduleFlush();
      return;
    }
    if (ids !== null && state.matches !== null) ids.forEach((id) => state.matches.add(id));
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
    const listed = fresh.filter(matches);
    newPill.added(listed.length); // before the list follows them: is the newest end in view?
    list.append(listed);
    updateEmpty();
    updateCounts();
  } else {
    if (!filters.group && filters.sort.key === "time") newPill.added(fresh.filter(matches).length);
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
  newPill.reset();
  showList();
  selection.cleared();
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
  if (filters.active) requestFilters();
}

function exportKept() {
  const stale = state.all.filter((c) => c.stale);
  const full = saveKept(stale, detailCache);
  notice(`Saved ${stale.length} capture(s): ${full} with their full content (the ones opened here), the rest as summaries.`);
}

function discardKept() {
  state.all = state.all.filter((c) => !c.stale);
  state.byKey = new Map(state.all.map((c) => [keyOf(c), c]));
  selection.prune();
  showList();
}

// --- selection and detail -----------------------------------------------------------------

const select = (key, options) => selection.select(key, options);
window.addEventListener("hashchange", () => selection.selectFromHash());

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

installPause($("pause"), { state, receive, updateWaiting, unreachable: () => connection.reportFailure() });

installTransfer(
  { importFile: $("import-file"), clear: $("clear"), dialog: $("clear-dialog"), count: $("clear-count") },
  { liveCount: () => state.all.filter((c) => !c.stale).length, notice, unreachable: () => connection.reportFailure() },
);

menuButton($("export-button"), $("export-menu"), { onOpen: updateExportLinks });

function updateExportLinks() {
  setExportLinks(filters.params(), state.byKey.get(state.selectedKey));
}

function updateCounts() {
  const grouped = filters.group && state.journeys;
  setCounts(list.items.length, state.all.length, grouped ? state.journeys.length : null);
}

function updateWaiting() {
  setWaiting(state.paused, state.waitingCount);
}

installKeys({
  move,
  expand,
  search: () => $("search").focus(),
  resetFilters,
});

installColumns({
  pane: document.querySelector(".list-pane"), header: $("list-head"), list: $("list"), layout: document.querySelector(".layout"),
  splitter: $("splitter"),
});

// On a small screen the list shrinks when the detail opens below it: keep the selected row in view.
new ResizeObserver(() => list.revealSelected()).observe($("list"));

// --- start --------------------------------------------------------------------------------

async function start() {
  filters.loadFromUrl();
  updateSortButtons(filters.sort);
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
  watchStore(stats);
  const items = page.items.reverse();
  for (const c of items) {
    state.all.push(c);
    state.byKey.set(keyOf(c), c);
  }
  state.lastId = page.last_id;
  updateExportLinks();
  if (filters.active) await requestFilters();
  else {
    if (filters.group) await refreshJourneys();
    showList();
  }
  connection.connect();
  await loadPins(() => showList()); // before the detail opens: its header shows the pin and note
  selection.selectFromHash();
}

installCatalog({
  picker: $("api-picker"), version: $("tyk-version"), banner: $("gateway-banner"), hooksButton: $("apis-button"),
  dialog: $("apis-dialog"), onNames: () => showList(),
});
// Pins: the rows of a pinned capture show it (list.js reads pins.js).
document.addEventListener("pins-changed", () => showList());

// For the curious, in the console (and for the benchmarks: `forget` drops a cached detail).
window.tykInspector = { state, filters, connection, formatBytes, formatTime, forget: (id) => detailCache.delete(String(id)) };
start();
