// The journey of one API request: its hook calls in the gateway's order on a timeline, with each
// hook's duration and outcome, the upstream's time between Post and Response, and its events.
import { apiName, apiTitle } from "./catalog.js";
import { effectiveStatus, el, formatDuration, statusClass, text } from "./dom.js";

const ORDER = ["Pre", "CustomKeyCheck", "PostKeyAuth", "Post", "Response"];
const LABEL = { CustomKeyCheck: "auth", PostKeyAuth: "PostKeyAuth" };
const BY = {
  tag: "the inspector's request tag (--tag-requests)",
  traceparent: "the traceparent trace id",
  "request-id": "a request-id header",
  heuristic: "same connection, API, method and path, in hook order and close in time",
};

/** GET /api/captures/{id}/journey: its steps (in hook order) and events, as list summaries. */
export async function loadJourney(captureId, known) {
  let res;
  try {
    res = await fetch(`/api/captures/${captureId}/journey`);
  } catch {
    return { error: "The inspector is not answering." };
  }
  const body = await res.json().catch(() => ({}));
  if (!res.ok) return { error: body.detail || `the inspector answered ${res.status}` };
  const journey = body;
  // Steps and events carry their own fields; what the page has of them (size, upstream status) is added.
  const steps = (journey.steps || []).map((step) => ({ kind: "dispatch", ...(known(step.id) || {}), ...step }));
  const events = (journey.events || []).map((e) => ({ ...(known(e.id) || {}), kind: "event", id: e.id, hook_type: e.type, received_at: e.received_at, confidence: e.confidence }));
  return { journey, steps, events };
}

/** The timeline; `current` is the capture the detail shows; `open(id)` selects another. */
export function journeyView({ journey, steps, events, error }, current, open) {
  if (error) return text("p", error, { class: "muted" });
  steps.sort((a, b) => ORDER.indexOf(a.hook_type) - ORDER.indexOf(b.hook_type) || a.id - b.id);
  const start = Math.min(...steps.map((c) => c.received_at), ...events.map((c) => c.received_at));
  const ends = steps.map((c) => c.received_at + (c.duration_ms || 0) / 1000);
  const total = Math.max(0.000001, Math.max(...ends, start) - start);
  const rows = [];
  steps.forEach((c, i) => {
    const next = steps[i + 1];
    if (c.hook_type === "Response" && i > 0) {
      // Between the last request hook and the Response hook the gateway waited on the upstream.
      const before = steps[i - 1];
      const upstreamMs = (c.received_at - before.received_at) * 1000 - (before.duration_ms || 0);
      rows.push(upstreamRow(upstreamMs, before, start, total));
    }
    rows.push(stepRow(c, current, start, total, open, journey));
    for (const event of events.filter((e) => belongsTo(e, c, next))) rows.push(eventRow(event, open));
  });
  const loose = events.filter((e) => !steps.some((c, i) => belongsTo(e, c, steps[i + 1])));
  for (const event of loose) rows.push(eventRow(event, open));
  const confidence = journey.confidence ? ` · confidence ${journey.confidence}` : "";
  const by = BY[journey.by] || journey.by || "";
  return el("div", { class: "journey" },
    el("p", { class: "muted small" },
      `${journey.method || ""} ${journey.path || ""}`.trim() || "One API request",
      apiName(steps[0]?.api_id) ? ` · ${apiTitle(steps[0].api_id)}` : "",
      ` · ${steps.length} hook call(s)${events.length ? `, ${events.length} event(s)` : ""} · ${formatDuration(total * 1000)} from first to last`,
      by ? ` · correlated by ${by}${confidence}` : ""),
    el("ol", { class: "timeline", "aria-label": "The request's hooks in the gateway's order" }, rows));
}

function belongsTo(event, step, next) {
  return event.received_at >= step.received_at && (!next || event.received_at < next.received_at);
}

function bar(offset, width, className) {
  const track = el("span", { class: "track", "aria-hidden": "true" });
  const fill = el("span", { class: `bar ${className}` });
  // CSSOM, which the CSP allows.
  fill.style.left = `${Math.min(100, offset * 100).toFixed(2)}%`;
  fill.style.width = `${Math.max(0.6, width * 100).toFixed(2)}%`;
  track.append(fill);
  return track;
}

function stepRow(c, current, start, total, open, journey) {
  const status = effectiveStatus(c);
  const outcome = c.outcome_status === "continue" ? "continues" : c.outcome_status === "dropped" ? "connection dropped" : status ? `→ ${status}` : "";
  const weak = c.confidence && c.confidence !== "high" ? c.confidence : null;
  const link = el("a", { href: `#capture=${c.id}`, class: "step-link", onclick: (e) => { e.preventDefault(); open(c.id); } },
    text("span", LABEL[c.hook_type] || c.hook_type, { class: `step-hook hook-${c.hook_type}` }),
    text("span", c.hook_name || "", { class: "step-name", title: c.hook_name || null }));
  return el("li", { class: `step${c.id === current ? " current" : ""}`, "data-id": c.id, "aria-current": c.id === current ? "step" : null },
    link,
    bar((c.received_at - start) / total, (c.duration_ms || 0) / 1000 / total, `hook-bg-${c.hook_type}`),
    text("span", formatDuration(c.duration_ms), { class: "step-dur" }),
    text("span", outcome, { class: `step-outcome ${statusClass(status)}` }),
    stepNotes([c.modified ? "changed" : "", c.warnings?.length ? `⚠ ${c.warnings.length}` : "", weak ? `${weak} confidence` : ""].filter(Boolean).join(" · ")));
}

function upstreamRow(ms, before, start, total) {
  const from = before.received_at + (before.duration_ms || 0) / 1000;
  return el("li", { class: "step upstream" },
    text("span", "(upstream)", { class: "step-link muted" }),
    bar((from - start) / total, Math.max(0, ms) / 1000 / total, "bar-upstream"),
    text("span", formatDuration(Math.max(0, ms)), { class: "step-dur" }),
    text("span", "", { class: "step-outcome" }),
    stepNotes("the API's upstream, and the gateway"));
}

function eventRow(e, open) {
  return el("li", { class: "step event", "data-id": e.id },
    el("a", { href: `#capture=${e.id}`, class: "step-link", onclick: (ev) => { ev.preventDefault(); open(e.id); } },
      text("span", "event", { class: "step-hook hook-Event" }), text("span", e.hook_type || "", { class: "step-name" })),
    text("span", "", { class: "track" }), text("span", "", { class: "step-dur" }), text("span", "", { class: "step-outcome" }),
    stepNotes(e.hook_name || ""));
}

/** A step's notes; cut short in a narrow detail, so their whole text is the tooltip. */
function stepNotes(notes) {
  return text("span", notes, { class: "step-notes muted small", title: notes || null });
}
