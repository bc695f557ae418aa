// The capture list: only the rows in view are in the DOM, so 10,000 captures scroll
// as smoothly as 10. It sticks to the newest capture until the user scrolls away.
import { el, formatBytes, formatTime, text } from "./dom.js";

const ROW_HEIGHT = 26;
const OVERSCAN = 10;

export class CaptureList {
  constructor(container, spacer, { onSelect }) {
    this.container = container;
    this.spacer = spacer;
    this.onSelect = onSelect;
    this.items = [];
    this.index = new Map(); // id -> position in items
    this.selectedId = null;
    this.stick = true;
    this.renderRequested = false;
    this.rows = new Map(); // id -> row element now in the DOM, reused while it stays in view
    container.addEventListener("scroll", () => {
      const bottom = container.scrollTop + container.clientHeight >= container.scrollHeight - ROW_HEIGHT;
      this.stick = bottom;
      this.requestRender();
    });
    container.addEventListener("click", (e) => {
      const row = e.target.closest(".row[data-id]");
      if (row) this.onSelect(Number(row.dataset.id));
    });
    new ResizeObserver(() => this.requestRender()).observe(container);
  }

  setItems(items) {
    this.items = items;
    this.index = new Map(items.map((c, i) => [c.id, i]));
    this.render();
  }

  append(items) {
    if (!items.length) return;
    for (const c of items) {
      this.index.set(c.id, this.items.length);
      this.items.push(c);
    }
    this.render();
  }

  setSelected(id, scroll) {
    this.selectedId = id;
    const position = this.index.get(id);
    if (scroll && position !== undefined) {
      const top = position * ROW_HEIGHT;
      const view = this.container;
      if (top < view.scrollTop) view.scrollTop = top;
      else if (top + ROW_HEIGHT > view.scrollTop + view.clientHeight) view.scrollTop = top + ROW_HEIGHT - view.clientHeight;
      this.stick = false;
    }
    this.render();
  }

  /** The id `delta` rows away from `id` (the newest when nothing is selected). */
  neighbour(id, delta) {
    if (!this.items.length) return null;
    const position = this.index.get(id);
    if (position === undefined) return this.items[this.items.length - 1].id;
    const next = Math.min(this.items.length - 1, Math.max(0, position + delta));
    return this.items[next].id;
  }

  requestRender() {
    if (this.renderRequested) return;
    this.renderRequested = true;
    requestAnimationFrame(() => {
      this.renderRequested = false;
      this.render();
    });
  }

  render() {
    const view = this.container;
    this.spacer.style.height = `${this.items.length * ROW_HEIGHT}px`;
    if (this.stick) view.scrollTop = view.scrollHeight;
    const first = Math.max(0, Math.floor(view.scrollTop / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(this.items.length, Math.ceil((view.scrollTop + view.clientHeight) / ROW_HEIGHT) + OVERSCAN);
    // Rows still in view are kept (only moved); while captures stream in, a frame creates just
    // the rows of the newest captures instead of rebuilding the whole window.
    const wanted = new Map();
    for (let i = first; i < last; i++) {
      const c = this.items[i];
      const row = this.rows.get(c.id) ?? this.row(c);
      row.style.top = `${i * ROW_HEIGHT}px`; // CSSOM, which the CSP allows (style attributes it does not)
      row.setAttribute("aria-selected", c.id === this.selectedId ? "true" : "false");
      wanted.set(c.id, row);
    }
    for (const [id, row] of this.rows) if (!wanted.has(id)) row.remove();
    const fresh = [...wanted.values()].filter((row) => !row.isConnected);
    if (fresh.length) this.spacer.append(...fresh);
    this.rows = wanted;
  }

  row(c) {
    const classes = ["row"];
    if (c.error) classes.push("failed");
    if (c.modified) classes.push("modified");
    if (c.imported) classes.push("imported");
    if (c.warnings && c.warnings.length) classes.push("warned");
    const row = el("div", { class: classes.join(" "), role: "row", "data-id": c.id, "data-kind": c.kind },
    text("span", c.id, { class: "c-id" }),
    text("span", formatTime(c.received_at), { class: "c-time" }),
    text("span", c.kind, { class: "c-kind" }),
    text("span", c.hook_type, { class: `c-hook hook-${c.kind === "event" ? "Event" : c.hook_type}` }),
    text("span", c.hook_name, { class: "c-name" }),
    text("span", c.api_id, { class: "c-api" }),
    text("span", c.method, { class: "c-method" }),
    text("span", c.path, { class: "c-path", title: c.path }),
    text("span", c.status ?? "", { class: "c-status" }),
    text("span", formatBytes(c.size), { class: "c-size" }));
    if (c.error) row.title = c.error;
    return row;
  }
}
