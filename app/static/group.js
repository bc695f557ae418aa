// Grouping the list by request: one row per API request (GET /api/journeys), its hook calls
// shown beneath it when expanded. The server correlates; the page only lays the rows out.

const HOOK_SHORT = { Pre: "Pre", CustomKeyCheck: "auth", PostKeyAuth: "PostKeyAuth", Post: "Post", Response: "Response" };

/** The journeys matching `params`, oldest first; throws on a failed request. */
export async function fetchJourneys(params) {
  const query = new URLSearchParams(params);
  query.set("limit", "10000");
  const res = await fetch(`/api/journeys?${query}`);
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.detail || `the inspector answered ${res.status}`);
  return body.items.reverse();
}

/**
 * List items: a row per journey, followed by its captures when the journey is expanded; the
 * `captures` that belong to no journey (an event whose request was not seen) keep a row of their own.
 */
export function groupedItems(journeys, expanded, summaryOf, captures) {
  const inJourney = new Set();
  for (const j of journeys) for (const id of [...j.capture_ids, ...j.event_ids]) inJourney.add(id);
  const loose = captures.filter((c) => !c.stale && !inJourney.has(c.id));
  const items = [];
  let next = 0;
  for (const j of journeys) {
    while (next < loose.length && loose[next].received_at < j.started_at) items.push(loose[next++]);
    const first = summaryOf(j.capture_ids[0]) || {};
    const open = expanded.has(j.id);
    items.push({
      key: `j${j.id}`, journey: j, expanded: open, id: j.id, kind: "request",
      received_at: j.started_at, hook_type: `${j.capture_ids.length} hook${j.capture_ids.length === 1 ? "" : "s"}`,
      hook_name: j.hooks.map((h) => HOOK_SHORT[h] || h).join(" → "), api_id: j.api_id, method: j.method, path: j.path,
      outcome_status: typeof j.status === "number" || j.status === "dropped" ? j.status : null, status: null,
      duration_ms: j.duration_ms, size: null, warnings: first.warnings, confidence: j.confidence,
    });
    if (!open) continue;
    for (const id of [...j.capture_ids, ...j.event_ids]) {
      const c = summaryOf(id);
      if (c) items.push({ ...c, key: `${j.id}-${c.id}`, child: true });
    }
  }
  items.push(...loose.slice(next));
  return items;
}
