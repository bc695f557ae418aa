// The capture list: only the rows in view are in the DOM, so 10,000 captures scroll
// as smoothly as 10. In time order it sticks to the newest capture until the user scrolls away.
import { apiLabel, apiName, apiTitle } from "./catalog.js";
import { effectiveStatus, el, formatBytes, formatDuration, formatTime, statusClass, text } from "./dom.js";
import { pins } from "./pins.js";

const ROW_HEIGHT = 26;
const OVERSCAN = 10;
// New captures are drawn at most this often: at thousands a second each frame would otherwise
// build a whole window of new rows, and nobody reads 60 updates a second. A capture arriving
// after a quiet spell is still drawn on the next frame.
const APPEND_INTERVAL_MS = 100;

/** A capture's key in the list: its id, or a prefixed one for captures kept from before a restart. */
export const keyOf = (c) => c.key ?? String(c.id);

export class CaptureList {
  constructor(container, spacer, { onSelect }) {
    this.container = container;
    this.spacer = spacer;
    this.onSelect = onSelect;
    this.items = [];
    this.index = new Map(); // key -> position in items
    this.selectedKey = null;
    this.followNewest = true; // only meaningful in time order, oldest first
    this.stick = true;
    this.renderRequested = false;
    this.lastRender = -Infinity;
    this.renderTimer = 0;
    this.rows = new Map(); // key -> row element now in the DOM, reused while it stays in view
    container.addEventListener("scroll", () => {
      const bottom = container.scrollTop + container.clientHeight >= container.scrollHeight - ROW_HEIGHT;
      this.stick = bottom;
      this.requestRender();
    });
    container.addEventListener("click", (e) => {
      const row = e.target.closest(".row[data-key]");
      if (row) this.onSelect(row.dataset.key);
    });
    new ResizeObserver(() => this.requestRender()).observe(container);
  }

  setItems(items, { followNewest = true } = {}) {
    this.items = items;
    this.followNewest = followNewest;
    this.index = new Map(items.map((c, i) => [keyOf(c), i]));
    // Rows are rebuilt: a capture's fields (its status after a restart, say) may have changed.
    for (const row of this.rows.values()) row.remove();
    this.rows.clear();
    this.render();
  }

  append(items) {
    if (!items.length) return;
    for (const c of items) {
      this.index.set(keyOf(c), this.items.length);
      this.items.push(c);
    }
    this.requestRender(APPEND_INTERVAL_MS);
  }

  setSelected(key, scroll) {
    this.selectedKey = key;
    const position = this.index.get(key);
    if (scroll && position !== undefined) {
      this.scrollToPosition(position);
      this.stick = false;
    }
    this.render();
  }

  scrollToPosition(position) {
    const top = position * ROW_HEIGHT;
    const view = this.container;
    // clientHeight is rounded; a fractional height would leave the row a pixel short of the view.
    const height = Math.min(view.clientHeight, Math.floor(view.getBoundingClientRect().height));
    if (top < view.scrollTop) view.scrollTop = top;
    else if (top + ROW_HEIGHT > view.scrollTop + height) view.scrollTop = top + ROW_HEIGHT - height;
  }

  /** Show the list's first row (after a sort); in the live order (oldest first) its newest, followed. */
  scrollToStart() {
    this.stick = this.followNewest;
    this.container.scrollTop = 0;
    this.render();
  }

  /** Whether the newest captures are in view: the bottom in the live order, the top newest first. */
  showsNewest(newestFirst) {
    if (!newestFirst) return this.stick;
    return this.container.scrollTop < ROW_HEIGHT;
  }

  /** Scroll to the newest capture: the bottom (then followed) in the live order, the top newest first. */
  scrollToNewest(newestFirst) {
    if (newestFirst) this.container.scrollTop = 0;
    else {
      this.stick = true;
      this.container.scrollTop = this.container.scrollHeight;
    }
    this.render();
  }

  /** Keep the selected row in view (after the list's height changed, as on a small screen). */
  revealSelected() {
    const position = this.index.get(this.selectedKey);
    if (position !== undefined) this.scrollToPosition(position);
    this.render();
  }

  /** The key `delta` rows away from `key` (the newest when nothing is selected); ±Infinity: the ends. */
  neighbour(key, delta) {
    if (!this.items.length) return null;
    const position = this.index.get(key);
    if (delta === -Infinity) return keyOf(this.items[0]);
    if (delta === Infinity || position === undefined) return keyOf(this.items[this.items.length - 1]);
    const next = Math.min(this.items.length - 1, Math.max(0, position + delta));
    return keyOf(this.items[next]);
  }

  /** How many rows one page of the list holds. */
  pageSize() {
    return Math.max(1, Math.floor(this.container.clientHeight / ROW_HEIGHT) - 1);
  }

  /**
   * Draw on a coming frame, no sooner than `interval` ms after the last drawing. A request with
   * no interval (a scroll, a resize) does not wait for one that has: it draws on the next frame.
   */
  requestRender(interval = 0) {
    const wait = this.lastRender + interval - performance.now();
    if (wait > 0) {
      if (!this.renderRequested && !this.renderTimer) {
        this.renderTimer = setTimeout(() => { this.renderTimer = 0; this.requestRender(); }, wait);
      }
      return;
    }
    if (this.renderRequested) return;
    this.renderRequested = true;
    requestAnimationFrame(() => {
      this.renderRequested = false;
      this.render();
    });
  }

  render() {
    this.lastRender = performance.now();
    clearTimeout(this.renderTimer); // what it waited to draw is drawn now
    this.renderTimer = 0;
    const view = this.container;
    this.spacer.style.height = `${this.items.length * ROW_HEIGHT}px`;
    if (this.stick && this.followNewest) view.scrollTop = view.scrollHeight;
    const first = Math.max(0, Math.floor(view.scrollTop / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(this.items.length, Math.ceil((view.scrollTop + view.clientHeight) / ROW_HEIGHT) + OVERSCAN);
    // Rows still in view are kept (only moved); while captures stream in, a frame creates just
    // the rows of the newest captures instead of rebuilding the whole window.
    const wanted = new Map();
    for (let i = first; i < last; i++) {
      const c = this.items[i];
      const key = keyOf(c);
      const row = this.rows.get(key) ?? this.row(c);
      row.style.top = `${i * ROW_HEIGHT}px`; // CSSOM, which the CSP allows (style attributes it does not)
      row.setAttribute("aria-selected", key === this.selectedKey ? "true" : "false");
      row.setAttribute("aria-posinset", String(i + 1));
      row.setAttribute("aria-setsize", String(this.items.length));
      wanted.set(key, row);
    }
    for (const [key, row] of this.rows) if (!wanted.has(key)) row.remove();
    const fresh = [...wanted.values()].filter((row) => !row.isConnected);
    if (fresh.length) this.spacer.append(...fresh);
    this.rows = wanted;
    // Only a row in the DOM can be the active descendant; the selected one may be filtered or scrolled away.
    const selected = wanted.get(this.selectedKey);
    if (selected) view.setAttribute("aria-activedescendant", selected.id);
    else view.removeAttribute("aria-activedescendant");
  }

  row(c) {
    const classes = ["row"];
    if (c.error) classes.push("failed");
    if (c.modified) classes.push("modified");
    if (c.imported) classes.push("imported");
    if (c.replay_of) classes.push("replayed");
    if (c.stale) classes.push("stale");
  const pin = c.journey || c.stale ? null : pins.get(String(c.id));
  if (pin) classes.push("pinned", `mark-${pin.mark || "none"}`);
    if (c.warnings && c.warnings.length) classes.push("warned");
    if (c.journey) classes.push("journey");
    if (c.child) classes.push("child");
    const status = effectiveStatus(c);
    const marks = rowMarks(c);
    const key = keyOf(c);
    const row = el("div", {
      class: classes.join(" "), role: "option", id: `row-${key}`, "data-key": key, "data-id": c.id, "data-kind": c.kind,
    },
    text("span", c.journey ? (c.expanded ? "▾" : "▸") : marks.map(([sign]) => sign).join(""),
      { class: "c-mark", title: c.journey ? `one API request (${c.confidence} confidence): Enter or → shows its hooks` : marks.map(([, why]) => why).join("; ") || null }),
    text("span", c.id, { class: "c-id" }),
    text("span", formatTime(c.received_at), { class: "c-time" }),
    text("span", c.kind, { class: "c-kind" }),
    // Every cell that can be cut short says its whole text on hover.
    text("span", c.hook_type, { class: `c-hook hook-${c.kind === "event" ? "Event" : c.hook_type}`, title: c.hook_type || null }),
    text("span", c.hook_name, { class: "c-name", title: c.hook_name || null }),
    text("span", apiLabel(c.api_id), { class: apiName(c.api_id) ? "c-api named" : "c-api", title: apiTitle(c.api_id) || c.api_id || null }),
    text("span", c.method, { class: "c-method", title: c.method || null }),
    text("span", c.path, { class: "c-path", title: c.path }),
    text("span", status ?? "", { class: `c-status ${statusClass(status)}`, title: statusTitle(c) }),
    text("span", formatDuration(c.duration_ms), { class: "c-dur" }),
    text("span", formatBytes(c.size), { class: "c-size" }));
    if (c.error) row.title = c.error;
    if (c.journey) row.setAttribute("aria-expanded", String(c.expanded));
    return row;
  }
}

/** The signs shown before a capture's id, with what each means. */
function rowMarks(c) {
  const marks = [];
  if (c.warnings && c.warnings.length) marks.push(["⚠", `${c.warnings.length} lint warning(s): ${c.warnings.join(", ")}`]);
  if (c.modified) marks.push(["✎", "the reply changed the Object"]);
  if (c.replay_of) marks.push(["↻", `replay of #${c.replay_of}`]);
  if (c.imported) marks.push(["⇣", "imported"]);
  if (c.stale) marks.push(["⌛", "from before the inspector restarted"]);
  const pin = c.journey || c.stale ? null : pins.get(String(c.id));
  if (pin) marks.push(["📌", `pinned${pin.note ? `: ${pin.note}` : ""}`]);
  return marks;
}

function statusTitle(c) {
  const outcome = c.outcome_status;
  if (outcome === "dropped") return "the gateway drops the client's connection";
  if (typeof outcome === "number" && outcome !== c.status) {
    return `the client gets ${outcome}` + (c.status ? ` (upstream ${c.status})` : "");
  }
  if (outcome === "continue") return c.status ? `upstream status ${c.status}; the request goes on` : "the request goes on";
  return c.status ? `upstream status ${c.status}` : null;
}
