// The Outcome tab: what Tyk Gateway does with the reply (the detail's `outcome`, docs/outcome.md),
// and the diff's rows with the changes the gateway ignores struck through.
import { bodyViewer } from "./body.js";
import { el, formatBytes, kvTable, section, text } from "./dom.js";

const RESULT_TEXT = {
  continue: "The request goes on",
  respond: "The client gets an answer",
  dropped: "The connection is dropped",
};

/** The tab's label: "Outcome" with the compact status. */
export function outcomeTabName(detail) {
  const status = detail.outcome && detail.outcome.status;
  if (status === undefined || status === null || status === "continue") return "Outcome";
  return `Outcome (${status})`;
}

/** Whether the page should open on the Outcome: a proxied or mocked reply that has an effect. */
export function opensOnOutcome(detail) {
  return Boolean(detail.outcome && detail.modified && detail.answered_by !== "echo");
}

/** The Outcome tab's content. */
export function outcomeTab(detail) {
  const outcome = detail.outcome;
  if (!outcome) return text("p", "No outcome: this is not a Dispatch call the gateway model can read.", { class: "muted" });
  const parts = [
    el("div", { class: "outcome-head", "data-result": outcome.result },
      text("span", String(outcome.status), { class: "pill outcome-status", "data-result": outcome.result }),
      text("strong", RESULT_TEXT[outcome.result] || outcome.result),
      text("p", outcome.summary, { class: "outcome-summary" })),
  ];
  if (outcome.client_response) parts.push(responseSection(detail, outcome.client_response));
  if (outcome.upstream_request) parts.push(requestSection(detail, outcome.upstream_request));
  if (outcome.auth) parts.push(authSection(outcome.auth));
  if (outcome.notes.length) {
    parts.push(section("Good to know", el("ul", { class: "outcome-notes" }, outcome.notes.map((n) => text("li", n)))));
  }
  const ignored = (detail.changes || []).filter((c) => c.ignored);
  if (ignored.length) {
    parts.push(section("Changes the gateway ignores", el("ul", { class: "outcome-ignored" },
      ignored.map((c) => el("li", {}, text("s", `${c.kind}: ${c.what}`), " — ", text("span", c.why, { class: "muted" }))))));
  }
  parts.push(text("p", `As Tyk Gateway ${outcome.tyk_version} handles it (--tyk-version).`,
    { class: "muted small", "data-tyk-version": outcome.tyk_version }));
  return el("div", { class: "outcome" }, parts);
}

function headerList(pairs) {
  if (!pairs.length) return text("p", "no headers", { class: "muted small" });
  return el("table", { class: "kv outcome-headers" },
    el("tbody", {}, pairs.map(([name, value]) => el("tr", {}, text("th", name), text("td", value)))));
}

function bodyFrom(detail, where, size) {
  if (!where || !size) return text("p", size ? `${formatBytes(size)}` : "empty", { class: "muted small" });
  const view = detail.bodies && detail.bodies[where];
  // "reply.response.rawBody" -> detail.reply.response.rawBody; "request.rawBody" -> detail.request.request.rawBody
  const path = where.split(".");
  let raw = path[0] === "reply" ? detail.reply : detail.request;
  for (const key of path[0] === "reply" ? path.slice(1) : path) raw = raw && raw[key];
  if (!view || typeof raw !== "string") return text("p", formatBytes(size), { class: "muted small" });
  return bodyViewer("outcome body", view, raw);
}

function responseSection(detail, response) {
  const facts = kvTable([
    ["status", response.status_line],
    ["from", response.source],
    ["events", response.events.length ? response.events.join(", ") : undefined],
    ["size", formatBytes(response.body_size)],
  ]);
  const body = response.body !== null
    ? text("pre", response.body, { class: "body-text outcome-body" })
    : bodyFrom(detail, response.body_from, response.body_size);
  return section("The client receives", facts, text("h4", "Headers"), headerList(response.headers),
    text("h4", "Body"), body);
}

function requestSection(detail, request) {
  const facts = kvTable([
    ["method", request.method],
    ["url", request.url],
    ["query", request.query || undefined],
    ["URL rewrite", request.url_rewrite ? "active: the url is the rewrite target" : undefined],
    ["body", formatBytes(request.body_size)],
  ]);
  return section("The upstream receives", facts, text("h4", "Headers"), headerList(request.headers),
    text("h4", "Body"), bodyFrom(detail, request.body_from, request.body_size));
}

function authSection(auth) {
  const metadata = Object.entries(auth.metadata).sort(([a], [b]) => a.localeCompare(b));
  return section("Authentication", kvTable([
    ["verdict", auth.allowed ? "allowed" : "refused"],
    ["why", auth.reason],
    ["token", auth.token || undefined],
    ["session key", auth.session_key ?? "the id-extractor key"],
    ["caching", auth.caching],
  ]), text("h4", "Session metadata (after the merge)"), kvTable(metadata, { empty: "none" }));
}

/** The diff as a table; ignored changes struck through with the reason. */
export function changesTable(changes, formatValue, className = "changes-table") {
  const rows = changes.map((c) => el("tr", { "data-kind": c.kind, class: c.ignored ? "ignored" : null, title: c.why || null },
    text("td", c.kind), text("td", c.what), text("td", formatValue(c.before), { class: "pre" }),
    text("td", formatValue(c.after), { class: "pre" }),
    text("td", c.ignored ? `ignored: ${c.why}` : "applied", { class: "small" })));
  return el("table", { class: `grid ${className}` },
    el("thead", {}, el("tr", {}, text("th", "change"), text("th", "what"), text("th", "before"), text("th", "after"),
      text("th", "effect"))),
    el("tbody", {}, rows));
}
