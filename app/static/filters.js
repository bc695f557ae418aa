// Filters: the form, the page URL (so reload and a shared link keep them) and the server's answer.
// The server alone decides what matches (the same `q=` language as the API and export), so the
// rows shown are exactly what "Filtered captures" exports.
import { statusRank } from "./dom.js";

const FILTER_KEYS = ["q", "api_id", "kind", "hook_type", "method", "status", "modified", "warnings"];
const PAGE_LIMIT = 10_000;
export const SORTS = ["time", "duration", "size", "status"];

const SORT_VALUE = {
  duration: (c) => c.duration_ms ?? 0,
  size: (c) => c.size ?? 0,
  status: statusRank,
};

/** `items` (in time order, oldest first) in the order `sort` asks for; ties keep time order (sort is stable). */
export function sortItems(items, { key, desc }) {
  const value = SORT_VALUE[key];
  if (value) items.sort(desc ? (a, b) => value(b) - value(a) : (a, b) => value(a) - value(b));
  else if (desc) items.reverse();
  return items;
}

export class Filters {
  constructor(form) {
    this.form = form;
    this.values = {};
    this.sort = { key: "time", desc: false };
    this.group = false;
    this.seq = 0;
  }

  /** Fill the form from the page URL (?q=...&kind=...&sort=duration-desc). */
  loadFromUrl() {
    const params = new URLSearchParams(location.search);
    for (const key of FILTER_KEYS) {
      const field = this.form.elements.namedItem(key);
      if (!field) continue;
      const value = params.get(key) ?? "";
      if (field.type === "checkbox") field.checked = value === "true";
      else field.value = value;
    }
    const [sortKey, direction] = (params.get("sort") || "time").split("-");
    this.sort = { key: SORTS.includes(sortKey) ? sortKey : "time", desc: direction === "desc" };
    this.group = params.get("group") === "request";
    this.read();
  }

  read() {
    const values = {};
    for (const [key, value] of new FormData(this.form).entries()) {
      if (FILTER_KEYS.includes(key) && String(value).trim()) values[key] = String(value).trim();
    }
    this.values = values;
    return values;
  }

  get active() {
    return Object.keys(this.values).length > 0;
  }

  /** The API's query parameters for these filters. */
  params() {
    return new URLSearchParams(this.values);
  }

  /** Write the filters, sort and grouping into the page URL, keeping the #capture= part. */
  saveToUrl() {
    const params = this.params();
    if (this.sort.key !== "time" || this.sort.desc) params.set("sort", `${this.sort.key}-${this.sort.desc ? "desc" : "asc"}`);
    if (this.group) params.set("group", "request");
    const search = params.toString();
    history.replaceState(null, "", `${location.pathname}${search ? `?${search}` : ""}${location.hash}`);
  }

  /** Forget any answer still on its way: the filters changed. */
  cancel() {
    this.seq += 1;
  }

  /**
   * The ids of every capture matching the filters (after `afterId` when given), or null when the
   * filters changed meanwhile. Throws FilterError with the server's reason for a bad filter.
   * Asking for all of them supersedes any question still on its way; asking for the ones after
   * an id (new captures checked against the same filters) supersedes nothing.
   */
  async matchingIds(afterId = 0) {
    const seq = afterId ? this.seq : ++this.seq;
    const ids = new Set();
    let cursor = null;
    for (;;) {
      const params = this.params();
      params.set("limit", String(PAGE_LIMIT));
      params.set("fields", "id"); // ids only: the page has the summaries already
      if (afterId) params.set("after", String(cursor ?? afterId));
      else if (cursor) params.set("before", String(cursor));
      const res = await fetch(`/api/captures?${params}`);
      if (seq !== this.seq) return null;
      const body = await res.json().catch(() => ({ detail: `the inspector answered ${res.status}` }));
      if (!res.ok) throw new FilterError(body.detail || `the inspector answered ${res.status}`, res.status);
      for (const id of body.items) ids.add(id);
      cursor = afterId ? body.next_after : body.next_before;
      if (!cursor) return ids;
    }
  }

  /** The text to mark in the detail, as the server's parser reads the query (GET /api/query/parse). */
  async loadHighlights() {
    const q = this.values.q || "";
    if (this.highlightsFor === q) return;
    this.highlightsFor = q;
    this.terms = q ? this.guessTerms(q) : [];
    if (!q) return;
    try {
      const res = await fetch(`/api/query/parse?${new URLSearchParams({ q })}`);
      if (res.ok && this.highlightsFor === q) this.terms = astTerms((await res.json()).ast);
    } catch {
      // the guess stays
    }
  }

  highlightTerms() {
    return this.terms ?? [];
  }

  /** Words and values worth highlighting, read roughly from the query text (before the parser answers). */
  guessTerms(q) {
    const terms = [];
    const token = /(!?)(?:([A-Za-z_.]+):)?("(?:[^"\\]|\\.)*"|\/(?:[^/\\]|\\.)+\/|[^\s()]+)/g;
    for (const [, negated, field, raw] of q.matchAll(token)) {
      if (negated || /^(and|or|not)$/i.test(raw)) continue;
      if (field && !["body", "h", "header", "path", "text"].includes(field.toLowerCase())) continue;
      let value = raw.startsWith('"') ? raw.slice(1, -1).replace(/\\(.)/g, "$1") : raw;
      if (raw.startsWith("/")) continue; // a regex: no literal to mark
      if (field && /^h(eader)?$/i.test(field) && value.includes("=")) value = value.slice(value.indexOf("=") + 1);
      if (value.length >= 3) terms.push(value);
    }
    return terms;
  }
}

export class FilterError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

const MARKED_FIELDS = new Set(["body", "path", "h", "meta", "peer"]);

/** Literal text in the positive terms of a parsed query: free text, and body:, path:, h:N=v values. */
function astTerms(node, negated = false, out = []) {
  if (!node) return out;
  if (node.op === "and" || node.op === "or") node.items.forEach((item) => astTerms(item, negated, out));
  else if (node.op === "not") astTerms(node.item, !negated, out);
  else if (!negated && (node.op === "text" || (node.op === "term" && MARKED_FIELDS.has(node.field)))) {
    const value = node.value || {};
    const literal = value.type === "text" ? value.text : value.type === "header" ? value.value?.text ?? value.value : null;
    if (typeof literal === "string" && literal.length >= 2) out.push(literal);
  }
  return out;
}
