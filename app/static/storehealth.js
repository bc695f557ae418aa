// Captures a shared store (--store redis://) could not keep while it was slow or away: the
// gateway got every answer, but these calls are not in the buffer. And the inspector's own health:
// a background task crashed or given up (degraded), a rules file edit refused. Said in the toolbar,
// from /api/stats, read at start and every few seconds (the stream does not carry them).
const POLL_MS = 2000;

function showHealth(health) {
  const pill = document.getElementById("health");
  if (!pill || !health) return;
  const down = (health.tasks || []).filter((t) => t.state === "failed" || t.state === "restarting");
  const rulesError = health.rules && health.rules.error;
  const parts = [];
  const titles = [];
  if (health.degraded) {
    parts.push("degraded");
    titles.push(...down.map((t) => `task ${t.name} ${t.state === "failed" ? "was given up" : "is restarting"}: ${t.last_error || "crashed"}`));
  }
  if (rulesError) {
    parts.push("rules not reloaded");
    titles.push(`The previous rules stay: ${rulesError}`);
  }
  pill.hidden = parts.length === 0;
  pill.textContent = parts.join(" · ");
  pill.title = titles.join("\n");
}

function show(stats) {
  const badge = document.getElementById("dropped");
  const dropped = stats.dropped || 0;
  badge.hidden = dropped === 0;
  badge.textContent = `${dropped.toLocaleString("en")} not stored`;
  badge.title = `${dropped} captures were answered but not kept: the shared store was slow or unreachable (see the log and /metrics)`;
  showHealth(stats.health);
}

/** Show the store's dropped count and the inspector's health now (`stats` from /api/stats) and keep them current. */
export function watchStore(stats) {
  show(stats);
  setInterval(async () => {
    try {
      const res = await fetch("/api/stats", { cache: "no-store" });
      if (res.ok) show(await res.json());
    } catch {
      // The connection banner reports an unreachable inspector.
    }
  }, POLL_MS);
}
