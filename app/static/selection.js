// The selected capture's detail: fetched once from the server, the most recent kept in the page,
// drawn with the filter's matches marked. A capture kept from before a restart shows what the page had.
import { renderDetail } from "./detail.js";
import { el, formatBytes, formatTime, text } from "./dom.js";

const DETAIL_CACHE_SIZE = 50;

export class Selection {
  /**
   * `state` holds the summaries (byKey) and the selected key; `onSelected` runs when the
   * selection changes (the export links follow it); `unreachable` reports a failed request.
   */
  constructor(pane, { state, list, filters, onSelected, unreachable }) {
    this.pane = pane;
    this.state = state;
    this.list = list;
    this.filters = filters;
    this.onSelected = onSelected;
    this.unreachable = unreachable;
    this.cache = new Map(); // key -> detail JSON, the most recent last
  }

  /** The summary behind a list key: a capture, a capture under its request, or a request's first capture. */
  summaryFor(key) {
    const { byKey } = this.state;
    const direct = byKey.get(key);
    if (direct) return direct;
    const item = this.list.items[this.list.index.get(key)];
    if (!item) return undefined;
    return item.journey ? byKey.get(String(item.journey.capture_ids[0])) : byKey.get(String(item.id)) ?? item;
  }

  async select(key, { scroll = true } = {}) {
    const state = this.state;
    const item = this.list.items[this.list.index.get(key)];
    if (item?.journey) this.pane.dataset.tab = "journey"; // a request's row shows its journey
    const summary = this.summaryFor(key);
    const cacheKey = summary && !summary.stale ? String(summary.id) : key;
    state.selectedKey = key;
    this.list.setSelected(key, scroll);
    if (summary && !summary.stale) history.replaceState(null, "", `${location.pathname}${location.search}#capture=${summary.id}`);
    this.onSelected();
    let detail = this.cache.get(cacheKey);
    if (!detail && summary?.stale) {
      this.pane.replaceChildren(staleDetail(summary));
      return;
    }
    if (!detail) {
      const id = summary ? summary.id : Number(key);
      let res;
      try {
        res = await fetch(`/api/captures/${id}`);
      } catch {
        if (state.selectedKey === key) {
          this.pane.replaceChildren(text("p", `Capture #${id} could not be loaded: the inspector is not answering.`, { class: "error-text", role: "alert" }));
        }
        this.unreachable();
        return;
      }
      const body = await res.json().catch(() => ({ detail: `the inspector answered ${res.status}` }));
      if (!res.ok) {
        if (state.selectedKey === key) this.pane.replaceChildren(text("p", body.detail, { class: "error-text", role: "alert" }));
        return;
      }
      detail = body;
      this.remember(cacheKey, detail);
    }
    if (state.selectedKey === key) this.show(detail);
  }

  remember(key, detail) {
    this.cache.set(key, detail);
    if (this.cache.size > DETAIL_CACHE_SIZE) {
      // Details of captures kept from before a restart are all that is left of them: evict others first.
      const victim = [...this.cache.keys()].find((k) => !this.state.byKey.get(k)?.stale) ?? this.cache.keys().next().value;
      this.cache.delete(victim);
    }
  }

  show(detail) {
    renderDetail(this.pane, detail, {
      highlight: this.filters.highlightTerms(),
      summaryOf: (id) => this.state.byKey.get(String(id)),
      open: (id) => this.select(String(id)),
    });
  }

  /** Draw the selected capture again (the filter's highlights changed). */
  rerender() {
    const key = this.state.selectedKey;
    const summary = this.summaryFor(key);
    const detail = this.cache.get(summary && !summary.stale ? String(summary.id) : key);
    if (detail) this.show(detail);
  }

  /** The buffer was emptied: drop the selection unless its capture is still listed. */
  cleared() {
    if (this.state.byKey.has(this.state.selectedKey)) return;
    this.pane.replaceChildren(text("p", "The buffer was cleared.", { class: "muted placeholder" }));
    this.state.selectedKey = null;
  }

  /** Forget details whose capture the page no longer lists. */
  prune() {
    for (const key of [...this.cache.keys()]) if (!this.state.byKey.has(key)) this.cache.delete(key);
  }

  /** Select the capture named in the page URL (#capture=N). */
  selectFromHash() {
    const match = /capture=(\d+)/.exec(location.hash);
    if (match) this.select(match[1]);
  }
}

function staleDetail(c) {
  return el("div", {},
    el("header", { class: "detail-head" },
      text("h2", `${c.hook_type || c.kind} · ${c.hook_name || ""}`),
      text("p", `#${c.id} · ${formatTime(c.received_at)} · ${formatBytes(c.size)}`, { class: "muted small" })),
    text("p", "This capture was in the inspector before it restarted. This page had only its summary, not its content.", { class: "muted" }));
}
