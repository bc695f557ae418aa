// After the inspector restarts (its ids start over), the page keeps the captures it had: marked
// stale, re-keyed so new captures with the same ids do not collide, and offered as a file.
import { el } from "./dom.js";
import { keyOf } from "./list.js";

/** Mark every live capture stale under a new key (r1-12); the selected key, moved too. */
export function markStale(all, detailCache, restarts, selectedKey) {
  const prefix = `r${restarts}-`;
  let selected = selectedKey;
  for (const c of all) {
    if (c.stale) continue;
    const old = keyOf(c);
    c.stale = true;
    c.key = prefix + c.id;
    if (old === selectedKey) selected = c.key;
    const detail = detailCache.get(old);
    if (detail) {
      detailCache.delete(old);
      detailCache.set(c.key, detail);
    }
  }
  return selected;
}

/**
 * Save the stale captures as an export document: importable records for those whose detail the
 * page had loaded, and every summary it had (`page_summaries`, which an import ignores).
 */
export function saveKept(stale, detailCache) {
  const records = [];
  for (const c of stale) {
    const d = detailCache.get(keyOf(c));
    if (!d || (d.request === null && !d.request_base64)) continue;
    records.push({
      id: d.id, kind: d.kind, received_at: d.received_at_iso, peer: d.peer, metadata: d.metadata,
      duration_ms: d.duration_ms, error: d.error, imported: d.imported, truncated: d.truncated,
      echo: d.echo, request: d.request, ...(d.request_base64 ? { request_base64: d.request_base64 } : {}), reply: d.reply,
    });
  }
  const doc = {
    format: "tyk-inspector-export", version: 1, exported_at: new Date().toISOString(),
    captures: records, page_summaries: stale,
  };
  const url = URL.createObjectURL(new Blob([JSON.stringify(doc, null, 1)], { type: "application/json" }));
  const a = el("a", { href: url, download: `tyk-inspector-kept-${new Date().toISOString().replace(/[:.]/g, "-")}.json` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 0);
  return records.length;
}
