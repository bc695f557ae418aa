// Captures a shared store (--store redis://) could not keep while it was slow or away: the
// gateway got every answer, but these calls are not in the buffer. Said in the toolbar, from
// /api/stats, read at start and, for a shared store, every few seconds (the stream does not carry it).
const POLL_MS = 2000;

function show(stats) {
  const badge = document.getElementById("dropped");
  const dropped = stats.dropped || 0;
  badge.hidden = dropped === 0;
  badge.textContent = `${dropped.toLocaleString("en")} not stored`;
  badge.title = `${dropped} captures were answered but not kept: the shared store was slow or unreachable (see the log and /metrics)`;
}

/** Show the store's dropped count now (`stats` from /api/stats) and keep it current for a shared store. */
export function watchStore(stats) {
  show(stats);
  if (stats.store !== "shared") return;
  setInterval(async () => {
    try {
      const res = await fetch("/api/stats", { cache: "no-store" });
      if (res.ok) show(await res.json());
    } catch {
      // The connection banner reports an unreachable inspector.
    }
  }, POLL_MS);
}
