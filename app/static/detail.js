// The detail view of one capture: request, session, response, spec and metadata, raw JSON, event.
import { base64ToBytes, bodyViewer, hexDump, jsonTree } from "./body.js";
import { apiName, apiTitle } from "./catalog.js";
import { compareControls } from "./compare.js";
import { copyAsMenu } from "./copyas.js";
import { pinControls } from "./pins.js";
import { journeyView, loadJourney } from "./journey.js";
import { button, copyText, el, formatBytes, kvTable, plural, section, text } from "./dom.js";
import { changesTable as effectTable, opensOnOutcome, outcomeTab, outcomeTabName } from "./outcome.js";
import { REDACTED, at, shownValue } from "./reveal.js";

const SESSION_EPOCH_FIELDS = ["expires", "quotaRenews", "lastCheck", "dataExpires", "idExtractorDeadline", "lastUpdated"];
const SESSION_FIRST = [
  ["alias", "key alias"], ["keyId", "key ID"], ["orgId", "org"], ["rate", "rate"], ["per", "per (s)"],
  ["allowance", "allowance"], ["quotaMax", "quota max"], ["quotaRemaining", "quota remaining"],
  ["quotaRenews", "quota renews"], ["quotaRenewalRate", "quota renewal rate (s)"], ["expires", "expires"],
  ["applyPolicyId", "policy"], ["isInactive", "inactive"], ["idExtractorDeadline", "ID extractor deadline"],
  ["lastUpdated", "last updated"], ["lastCheck", "last check"], ["dataExpires", "data expires"],
  ["sessionLifetime", "session lifetime (s)"], ["postExpiryAction", "post-expiry action"],
  ["postExpiryGracePeriod", "post-expiry grace (s)"], ["enableDetailedRecording", "detailed recording"],
  ["hmacEnabled", "HMAC enabled"], ["oauthClientId", "OAuth client"],
];

/** Render a capture's detail (the /api/captures/{id} JSON) into `root`; `highlight`: text to mark. */
export function renderDetail(root, detail, { highlight = [], summaryOf = () => null, open = () => {} } = {}) {
  const tabs = [];
  const journey = () => journeyTab(detail, summaryOf, open);
  if (detail.kind === "event") {
    tabs.push(["event", "Event", () => eventTab(detail)]);
    tabs.push(["journey", "Journey", journey]);
  } else if (detail.request) {
    const obj = detail.request;
    tabs.push(["request", "Request", () => requestTab(detail, obj)]);
    tabs.push(["reply", replyTabName(detail), () => replyTab(detail)]);
    tabs.push(["outcome", outcomeTabName(detail), () => outcomeTab(detail)]);
    if (obj.session) tabs.push(["session", "Session", () => sessionTab(obj.session, detail)]);
    if (obj.response) tabs.push(["response", "Response", () => responseTab(detail, obj.response)]);
    tabs.push(["journey", "Journey", journey]);
    tabs.push(["spec", "Spec & metadata", () => specTab(detail, obj)]);
  }
  if (!detail.request) tabs.push(["raw-bytes", "Raw bytes", () => rawBytesTab(detail)]);
  tabs.push(["raw", "Raw JSON", () => rawTab(detail)]);
  // What a capture opens on: the event; in proxy mode, what the gateway does with a reply that
  // changes something; the response a Response hook saw; else the request.
  const main = detail.kind === "event" ? "event"
    : opensOnOutcome(detail) ? "outcome"
    : detail.hook_type === "Response" && tabs.some(([id]) => id === "response") ? "response" : tabs[0][0];

  const bar = el("div", { class: "tabs", role: "tablist", "aria-label": "Capture detail" });
  const panel = el("div", { class: "tab-panel", role: "tabpanel", id: "tab-panel", tabindex: "0" });
  const buttons = tabs.map(([id, label], index) => button(label, () => select(index, true), {
    role: "tab", id: `tab-${id}`, "data-tab": id, "aria-controls": "tab-panel", "aria-selected": "false", tabindex: "-1",
  }));
  function select(index, chosen) {
    buttons.forEach((tab, i) => {
      tab.setAttribute("aria-selected", String(i === index));
      tab.tabIndex = i === index ? 0 : -1;
    });
    panel.setAttribute("aria-labelledby", buttons[index].id);
    panel.replaceChildren(tabs[index][2]());
    markMatches(panel, highlight);
    // The tab is remembered by what it is, not by its label ("Reply (2 changes)" changes from
    // capture to capture); the main tab is remembered as "main", whatever each capture's is.
    if (chosen) root.dataset.tab = tabs[index][0] === main ? "main" : tabs[index][0];
  }
  bar.addEventListener("keydown", (e) => {
    const at = buttons.indexOf(document.activeElement);
    if (at < 0) return;
    const next = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: buttons.length - 1 }[e.key];
    if (next === undefined) return;
    e.preventDefault();
    const index = (next + buttons.length) % buttons.length;
    select(index, true);
    buttons[index].focus();
  });
  panel.addEventListener("json-rendered", (e) => markMatches(e.target, highlight));
  bar.append(...buttons);
  root.replaceChildren(header(detail), bar, panel);
  const wanted = root.dataset.tab && root.dataset.tab !== "main" ? root.dataset.tab : main;
  const index = tabs.findIndex(([id]) => id === wanted);
  select(index >= 0 ? index : tabs.findIndex(([id]) => id === main), false);
}

const MAX_MARKS = 500;

/** Wrap each occurrence of the filter's text in <mark>, case-insensitively. */
function markMatches(node, terms) {
  if (!terms.length) return;
  const pattern = new RegExp(terms.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|"), "gi");
  const walker = document.createTreeWalker(node, NodeFilter.SHOW_TEXT);
  const hits = [];
  while (walker.nextNode() && hits.length < MAX_MARKS) {
    const textNode = walker.currentNode;
    if (textNode.parentElement?.closest("mark, button, textarea")) continue;
    pattern.lastIndex = 0;
    if (pattern.test(textNode.data)) hits.push(textNode);
  }
  for (const textNode of hits) {
    const parts = [];
    let last = 0;
    pattern.lastIndex = 0;
    for (const match of textNode.data.matchAll(pattern)) {
      parts.push(textNode.data.slice(last, match.index), text("mark", match[0]));
      last = match.index + match[0].length;
    }
    parts.push(textNode.data.slice(last));
    textNode.replaceWith(...parts.filter((p) => p !== ""));
  }
}

function journeyTab(detail, summaryOf, open) {
  const box = el("div", { class: "journey-box", "aria-busy": "true" }, text("p", "Finding the other hooks of this request…", { class: "muted" }));
  loadJourney(detail.id, summaryOf).then((journey) => {
    box.replaceChildren(journeyView(journey, detail.id, open));
    box.removeAttribute("aria-busy");
  });
  return box;
}

function replyTabName(detail) {
  const marks = [];
  if (detail.changes.length) marks.push(plural(detail.changes.length, "change"));
  if (detail.warnings.length) marks.push(`⚠ ${detail.warnings.length}`);
  return marks.length ? `Reply (${marks.join(", ")})` : "Reply";
}

function formatValue(value) {
  if (value === null || value === undefined) return "";
  return typeof value === "string" ? value : JSON.stringify(value, null, 1);
}

function replyTab(detail) {
  const parts = [];
  const who = {
    echo: "The inspector echoed the Object back unchanged.",
    mock: `A mock rule (${detail.rule}) answered.`,
    upstream: failedUpstream(detail)
      ? `The plugin server ${detail.upstream} did not answer${detail.upstream_status ? ` (${detail.upstream_status})` : ""}${detail.upstream_ms ? ` after ${detail.upstream_ms} ms` : ""}.`
      : `The plugin server ${detail.upstream} answered in ${detail.upstream_ms} ms.`,
    fallback: `The plugin server ${detail.upstream} failed (${detail.upstream_status}); the inspector echoed instead.`,
  }[detail.answered_by] || "";
  parts.push(text("p", who + (detail.replay_of ? ` This is a replay of #${detail.replay_of}.` : ""), { class: "muted" }));
  if (detail.warnings.length) {
    parts.push(section("Warnings", el("ul", { class: "warnings" },
      detail.warnings.map((w) => el("li", {}, text("code", w.code), " ", text("span", w.message))))));
  }
  if (detail.changes.length) {
    parts.push(section("What the plugin changed", changesTable(detail.changes)));
  } else if (detail.reply === null && !detail.echo) {
    parts.push(text("p", detail.error ? `No reply was returned to the gateway: ${detail.error}` : "No reply was returned to the gateway.", { class: "muted" }));
  } else {
    parts.push(text("p", "The reply is the Object as received: nothing changed.", { class: "muted small" }));
  }
  parts.push(section("Replay", replayForm(detail)));
  return el("div", {}, parts);
}

/** A proxied call the plugin server failed: no reply came back (the gateway got the inspector's error). */
function failedUpstream(detail) {
  return detail.answered_by === "upstream" && detail.reply === null && !detail.echo && Boolean(detail.error);
}

function changesTable(changes, className = "changes-table") {
  return effectTable(changes, formatValue, className);
}

function replayForm(detail) {
  const target = el("input", { type: "text", name: "to", placeholder: "HOST:PORT of a Dispatcher", value: detail.upstream || "" });
  const editor = el("textarea", { name: "object", rows: "14", spellcheck: "false", hidden: true, class: "replay-editor" });
  editor.value = JSON.stringify(detail.request, null, 2);
  const editToggle = el("label", { class: "small" }, el("input", { type: "checkbox", onchange: (e) => { editor.hidden = !e.target.checked; } }), " edit the Object first");
  const result = el("div", { class: "replay-result", role: "status" });
  const send = button("Replay", async () => {
    const body = { to: target.value.trim() || null, object: null };
    if (!editor.hidden) {
      try { body.object = JSON.parse(editor.value); } catch (err) { result.replaceChildren(text("p", `Not JSON: ${err.message}`, { class: "error-text" })); return; }
    }
    send.disabled = true;
    const res = await fetch(`/api/captures/${detail.id}/replay`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    const answer = await res.json();
    send.disabled = false;
    if (!res.ok) { result.replaceChildren(text("p", answer.detail, { class: "error-text" })); return; }
    const changes = answer.changes_vs_original;
    const parts = [el("p", {}, "Replayed as ", el("a", { href: `#capture=${answer.id}` }, `#${answer.id}`),
      answer.capture.error ? ` — ${answer.capture.error}` : ` — ${answer.capture.changes.length} change(s) to the Object`,
      changes ? `, ${changes.length} difference(s) from the original reply${changes.length ? ":" : "."}` : ".")];
    // The differences themselves: "before" is the reply the original call got, "after" the new one.
    if (changes && changes.length) parts.push(changesTable(changes, "replay-differences"));
    result.replaceChildren(...parts);
  }, { class: "primary" });
  return el("div", { class: "replay" }, el("div", { class: "toolbar" }, target, send), editToggle, editor, result);
}

function header(detail) {
  const title = detail.kind === "event"
    ? `Event ${detail.hook_type || "(unrecognised payload)"}`
    : `${detail.hook_type} · ${detail.hook_name || "(no hook name)"}`;
  const facts = [
    `#${detail.id}`, detail.received_at_iso, apiName(detail.api_id) ? apiTitle(detail.api_id) : null,
    `${formatBytes(detail.size)}`, `${detail.duration_ms} ms`,
    detail.peer, detail.imported ? "imported" : null, detail.echo ? "echoed unchanged" : null,
  ].filter(Boolean);
  const copy = detail.kind === "dispatch" && detail.request ? copyAsMenu(detail) : null;
  return el("header", { class: "detail-head" },
    el("div", { class: "detail-title" }, text("h2", title), compareControls(detail), copy?.control),
    text("p", facts.join(" · "), { class: "muted small" }),
    detail.replay_of ? el("p", { class: "small" }, "A replay of ", el("a", { href: `#capture=${detail.replay_of}` }, `#${detail.replay_of}`), ".") : null,
    detail.error ? text("p", detail.error, { class: "error-text" }) : null,
    detail.intercepted ? text("p", `Intercept: ${detail.intercepted}`, { class: "small intercepted" }) : null,
    detail.intercept_edit ? text("pre", detail.intercept_edit, { class: "small intercept-edit" }) : null,
    pinControls(detail, (id) => document.dispatchEvent(new CustomEvent("pins-changed", { detail: { id } }))),
    copy?.preview);
}

/** A name → value table; `where` ({id, which, path}) lets a redacted value be revealed. */
function headersTable(map, where = null) {
  return kvTable(Object.entries(map || {}).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [k, shownValue(v, at(where, k))]));
}

/** Where a value of the Object as received is, for reveal. */
const inRequest = (detail, ...path) => ({ id: detail.id, which: "request", path });

function listOrNone(values) {
  return values && values.length ? values.join(", ") : undefined;
}

function requestTab(detail, obj) {
  const req = obj.request || {};
  const overrides = req.returnOverrides || {};
  const parts = [
    section("Request", kvTable([
      ["method", req.method], ["url", shownValue(req.url, inRequest(detail, "request", "url"))],
      ["request URI", shownValue(req.requestUri, inRequest(detail, "request", "requestUri"))], ["scheme", req.scheme],
    ])),
    section("Headers", headersTable(req.headers, inRequest(detail, "request", "headers"))),
    section("Query parameters", headersTable(req.params, inRequest(detail, "request", "params"))),
    // The Object as the gateway sent it: changes made by earlier hooks' plugins, not this hook's reply.
    section("Changes in the Object as received", el("div", { class: "changes" }, kvTable([
      ["set headers", Object.keys(req.setHeaders || {}).length ? headersTable(req.setHeaders) : undefined],
      ["delete headers", listOrNone(req.deleteHeaders)],
      ["add params", Object.keys(req.addParams || {}).length ? headersTable(req.addParams) : undefined],
      ["extended params", Object.keys(req.extendedParams || {}).length ? headersTable(req.extendedParams) : undefined],
      ["delete params", listOrNone(req.deleteParams)],
      ["return overrides", overridesView(overrides)],
    ], { empty: receivedEmpty(detail) }))),
  ];
  const body = detail.bodies["request.rawBody"];
  if (body) parts.push(section("Body", bodyViewer("request body", body, req.rawBody, { fileName: `capture-${detail.id}-request-body`, source: { id: detail.id, which: "request" } })));
  else if (req.body) parts.push(section("Body", text("pre", req.body, { class: "body-text" })));
  if (detail.reply) parts.push(section("Plugin reply", el("div", { class: "json-tree" }, jsonTree(detail.reply, 0))));
  return el("div", {}, parts);
}

/** What the Request tab says when the Object came in without changes, pointing at the reply's own. */
function receivedEmpty(detail) {
  const changed = detail.changes.filter((c) => !c.ignored).length;
  const reply = changed ? `; this hook's reply makes ${plural(changed, "change")}: see the Reply and Outcome tabs` : "";
  return `none: the gateway sent no header, parameter or response changes${reply}`;
}

function overridesView(o) {
  const code = o.responseCode ?? 0;
  if (code <= 0 && !o.responseError && !o.responseBody && !Object.keys(o.headers || {}).length) return undefined;
  return kvTable([
    ["response code", code], ["response error", o.responseError], ["response body", o.responseBody],
    ["override error", o.overrideError ? "true" : undefined],
    ["headers", Object.keys(o.headers || {}).length ? headersTable(o.headers) : undefined],
  ]);
}

function epoch(value) {
  const seconds = Number(value);
  if (!Number.isFinite(seconds) || seconds <= 0) return String(value);
  const date = new Date(seconds * 1000);
  return el("span", { class: "epoch" }, text("span", date.toISOString().replace(".000Z", "Z")),
    text("span", ` (${value})`, { class: "muted" }));
}

function secret(value, where) {
  if (!value) return undefined;
  if (String(value).includes(REDACTED)) return shownValue(value, where);
  const shown = text("code", "••••••••", { class: "secret", "data-revealed": "false" });
  const toggle = button("reveal", () => {
    const revealed = shown.dataset.revealed === "true";
    shown.textContent = revealed ? "••••••••" : value;
    shown.dataset.revealed = String(!revealed);
    toggle.textContent = revealed ? "reveal" : "hide";
  }, { class: "link" });
  return el("span", {}, shown, " ", toggle);
}

function sessionTab(session, detail) {
  const inSession = (...path) => inRequest(detail, "session", ...path);
  const first = SESSION_FIRST
    .filter(([key]) => session[key] !== undefined)
    .map(([key, label]) => [label, SESSION_EPOCH_FIELDS.includes(key) ? epoch(session[key]) : String(session[key])]);
  const parts = [
    section("Key", kvTable(first, { empty: "an empty session (keyless API)" })),
    section("Policies and tags", kvTable([
      ["policies", listOrNone(session.applyPolicies)], ["tags", listOrNone(session.tags)],
    ])),
    section("Metadata", headersTable(session.metadata, inSession("metadata"))),
    section("Access rights", accessRights(session.accessRights || {})),
    section("Secrets", kvTable([
      ["basic auth password", secret(session.basicAuthData?.password, inSession("basicAuthData", "password"))],
      ["basic auth hash", secret(session.basicAuthData?.hash, inSession("basicAuthData", "hash"))],
      ["JWT secret", secret(session.jwtData?.secret, inSession("jwtData", "secret"))],
      ["HMAC secret", secret(session.hmacSecret, inSession("hmacSecret"))],
      ["certificate", session.certificate],
    ])),
  ];
  if (session.monitor?.triggerLimits?.length) {
    parts.push(section("Monitor", kvTable([["trigger limits", session.monitor.triggerLimits.join(", ")]])));
  }
  if (Object.keys(session.oauthKeys || {}).length) parts.push(section("OAuth keys", headersTable(session.oauthKeys, inSession("oauthKeys"))));
  return el("div", {}, parts);
}

function accessRights(rights) {
  const entries = Object.entries(rights);
  if (!entries.length) return text("p", "none", { class: "muted small" });
  const rows = [];
  for (const [apiId, def] of entries) {
    const urls = (def.allowedUrls || []).map((u) => `${(u.methods || []).join(",") || "*"} ${u.url || ""}`);
    rows.push(el("tr", {}, text("td", def.apiName || ""), text("td", def.apiId || apiId, { class: "mono" }),
      text("td", (def.versions || []).join(", ")), text("td", urls.join("\n") || "all", { class: "pre" })));
  }
  return el("table", { class: "grid" },
    el("thead", {}, el("tr", {}, text("th", "API"), text("th", "API ID"), text("th", "versions"), text("th", "allowed URLs"))),
    el("tbody", {}, rows));
}

function responseTab(detail, response) {
  const multi = (response.multivalueHeaders || []).map((h) => el("tr", {}, text("th", h.key), text("td", (h.values || []).join("\n"), { class: "pre" })));
  const parts = [
    section("Response", kvTable([["status", response.statusCode ?? 0]])),
    section("Headers", headersTable(response.headers, inRequest(detail, "response", "headers"))),
    section("Multi-value headers", multi.length ? el("table", { class: "kv" }, el("tbody", {}, multi)) : text("p", "none", { class: "muted small" })),
  ];
  const body = detail.bodies["response.rawBody"];
  if (body) parts.push(section("Body", bodyViewer("response body", body, response.rawBody, { fileName: `capture-${detail.id}-response-body`, source: { id: detail.id, which: "response" } })));
  else if (response.body) parts.push(section("Body", text("pre", response.body, { class: "body-text" })));
  return el("div", {}, parts);
}

function specTab(detail, obj) {
  const spec = { ...(obj.spec || {}) };
  const configData = spec.config_data;
  delete spec.config_data;
  const parts = [
    section("API", kvTable([["API name", apiName(spec.APIID) ?? undefined], ["API ID", spec.APIID], ["org ID", spec.OrgID], ["bundle hash", spec.bundle_hash],
      ...Object.entries(spec).filter(([k]) => !["APIID", "OrgID", "bundle_hash"].includes(k))])),
  ];
  if (configData !== undefined) {
    let parsed = null;
    try { parsed = JSON.parse(configData); } catch { /* shown as text */ }
    parts.push(section("config_data", parsed !== null ? el("div", { class: "json-tree" }, jsonTree(parsed, 0)) : text("pre", configData)));
  }
  parts.push(section("Object metadata", headersTable(obj.metadata, inRequest(detail, "metadata"))));
  parts.push(section("gRPC metadata", kvTable(detail.metadata.map(([k, v]) => [k, v]))));
  return el("div", {}, parts);
}

function eventTab(detail) {
  const event = detail.event;
  if (!event) return text("p", "undecodable event", { class: "muted" });
  const parts = [];
  if (event.payload_error) parts.push(text("p", event.payload_error, { class: "error-text" }));
  parts.push(section("Payload", typeof event.payload === "string"
    ? text("pre", event.payload, { class: "body-text" })
    : el("div", { class: "json-tree" }, jsonTree(event.payload, 0))));
  if (event.originating_request) parts.push(section("Originating request", text("pre", event.originating_request, { class: "body-text" })));
  return el("div", {}, parts);
}

function rawBytesTab(detail) {
  const bytes = base64ToBytes(detail.request_base64 || "");
  return section(`Received bytes (${formatBytes(bytes.length)}, not a valid message)`, text("pre", hexDump(bytes), { class: "hexdump" }));
}

function rawTab(detail) {
  const json = JSON.stringify(detail.request, null, 2);
  const copy = button("Copy", (e) => copyText(json, e.currentTarget));
  const parts = [section("Protobuf JSON", el("div", { class: "toolbar" }, copy), text("pre", json, { class: "raw-json" }))];
  if (detail.reply) parts.push(section("Reply", text("pre", JSON.stringify(detail.reply, null, 2), { class: "raw-json" })));
  return el("div", {}, parts);
}
