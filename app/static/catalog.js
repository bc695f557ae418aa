// The gateway's catalog (--gateway-url): API names and listen paths for every API ID the page
// shows, the API picker beside the filter, the version the model follows and where it came from,
// a banner when a gateway cannot be read, and the per-API hooks view (GET /api/apis).
import { button, el, formatTime, text } from "./dom.js";

const POLL_MS = 10_000;
const names = new Map(); // API ID -> {name, listen_path}
let poll = async () => {};

/** The API's name ("Orders API"), or null when the catalog does not know it. */
export function apiName(apiId) {
  return names.get(apiId)?.name || null;
}

/** What the list shows for an API: its name, else the ID. */
export function apiLabel(apiId) {
  return apiName(apiId) ?? apiId ?? "";
}

/** "Orders API /orders/ (b84fe1a0…)" for titles, the HAR's comment and the journey. */
export function apiTitle(apiId) {
  const api = names.get(apiId);
  if (!api) return apiId || "";
  return `${api.name} ${api.listen_path || ""} (API ID ${apiId})`.replace(/\s+/g, " ");
}

/**
 * Read the catalog now and every few seconds; `onNames` runs when the names changed (the list
 * redraws its rows).
 */
export function installCatalog({ picker, version, banner, hooksButton, dialog, onNames }) {
  const wanted = new URLSearchParams(location.search).get("api_id") || "";
  let revision = null;
  poll = async () => {
    let doc;
    try {
      const res = await fetch(revision === null ? "/api/apis/names" : `/api/apis/names?revision=${revision}`);
      if (!res.ok) return;
      doc = await res.json();
    } catch {
      return; // the connection pill says the inspector is away
    }
    showVersion(version, doc.tyk_version);
    showBanner(banner, doc);
    picker.hidden = !doc.configured;
    hooksButton.hidden = !doc.configured;
    if (!doc.configured) clearInterval(timer); // no --gateway-url: nothing will change
    if (doc.names === null) return; // unchanged since the last read
    revision = doc.revision;
    names.clear();
    for (const [id, api] of Object.entries(doc.names)) names.set(id, api);
    const before = picker.value;
    fillPicker(picker, before || wanted);
    onNames();
    // A link with ?api_id= was read before the picker had its options: apply it now.
    if (picker.value !== before) picker.dispatchEvent(new Event("input", { bubbles: true }));
  };
  hooksButton.addEventListener("click", () => openHooks(dialog));
  const timer = setInterval(() => poll(), POLL_MS);
  poll();
}

function showVersion(node, tykVersion) {
  if (!node || !tykVersion) return;
  const source = tykVersion.source.startsWith("/hello") ? "from the gateway" : tykVersion.source === "default"
    ? "default" : tykVersion.source;
  node.textContent = `Tyk ${tykVersion.version}`;
  node.dataset.source = tykVersion.source;
  const where = document.getElementById("tyk-version-source");
  if (where) where.textContent = `(${source})`;
  node.title = `The outcome, lint and diff follow Tyk ${tykVersion.version}: ${
    tykVersion.source === "default" ? "the latest known (no --tyk-version, no gateway read)" : tykVersion.source}`;
}

function age(seconds) {
  if (seconds === null || seconds === undefined) return "never read";
  if (seconds < 90) return `${Math.round(seconds)} s old`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min old`;
  return `${Math.round(seconds / 3600)} h old`;
}

function showBanner(node, doc) {
  const failing = (doc.gateways || []).filter((g) => g.error);
  node.replaceChildren(...failing.map((g) => text("p",
    g.stale ? `API names from ${g.url} are stale (${age(g.age_seconds)}): ${g.error}`
      : `Gateway catalog not read: ${g.error}`,
    { class: "gateway-problem", "data-stale": String(g.stale) })));
  node.hidden = failing.length === 0;
}

function fillPicker(picker, selected) {
  const sorted = [...names.entries()].sort((a, b) => a[1].name.localeCompare(b[1].name));
  const options = [el("option", { value: "" }, "all APIs")];
  for (const [id, api] of sorted) {
    options.push(el("option", { value: id, title: id }, `${api.name || id} ${api.listen_path || ""}`.trim()));
  }
  if (selected && !names.has(selected)) options.push(el("option", { value: selected }, selected));
  picker.replaceChildren(...options);
  picker.value = selected;
}

// --- the hooks view -------------------------------------------------------------------------

async function openHooks(dialog) {
  const body = dialog.querySelector(".hooks-body");
  if (!dialog.open) dialog.showModal();
  body.replaceChildren(text("p", "Reading…", { class: "muted" }));
  try {
    const res = await fetch("/api/apis");
    body.replaceChildren(...hooksView(await res.json(), dialog));
  } catch {
    body.replaceChildren(text("p", "The inspector did not answer.", { class: "error-text" }));
  }
}

function hooksView(doc, dialog) {
  const refresh = button("Read the gateway now", async () => {
    refresh.disabled = true;
    try {
      await fetch("/api/apis/refresh", { method: "POST" });
    } finally {
      await Promise.all([openHooks(dialog), poll()]);
    }
  });
  refresh.id = "apis-refresh";
  const gateways = (doc.gateways || []).map((g) => text("p",
    `${g.url}: ${g.ok ? `${g.api_count} APIs, version ${g.version || "unknown"}, read ${age(g.age_seconds)}`
      : g.error}`, { class: g.ok ? "muted small" : "error-text small" }));
  const parts = [el("div", { class: "hooks-gateways" }, ...gateways, refresh)];
  for (const api of doc.apis) parts.push(apiCard(api));
  if (doc.unknown_apis.length) {
    parts.push(el("section", { class: "card hooks-api", "data-unknown": "true" },
      text("h3", "Calls from APIs the catalog does not know"),
      text("p", doc.unknown_apis[0].reason.text, { class: "muted small" }),
      el("ul", {}, doc.unknown_apis.map((u) => text("li", `${u.api_id}: ${u.calls} call(s)`)))));
  }
  if (!doc.apis.length) parts.push(text("p", "The gateway lists no API (or has not been read yet).", { class: "muted" }));
  return parts;
}

function apiCard(api) {
  const flags = [api.active ? null : "inactive", api.use_keyless ? "keyless" : null, api.is_oas ? "Tyk OAS" : "Classic",
    `driver ${api.driver || "(empty)"}`, api.bundle ? `bundle ${api.bundle}` : null].filter(Boolean).join(" · ");
  const head = el("h3", {}, text("span", api.name || api.api_id, { class: "hooks-api-name" }), " ",
    text("span", api.listen_path, { class: "mono muted" }));
  const rows = api.hooks.map((h) => el("tr", { "data-hook": h.name, "data-fires": String(h.fires) },
    text("td", h.hook_type), text("td", h.name, { class: "mono" }), text("td", String(h.calls)),
    text("td", h.last_seen_us ? formatTime(h.last_seen_us / 1e6) : "—"),
    text("td", h.p50_ms === null ? "—" : `${h.p50_ms} ms`), text("td", h.p99_ms === null ? "—" : `${h.p99_ms} ms`),
    text("td", Object.entries(h.outcomes).map(([k, n]) => `${k} ×${n}`).join(", ") || "—"),
    el("td", { class: "hooks-why" }, verdict(h, api))));
  return el("section", { class: "card hooks-api", "data-api-id": api.api_id },
    head, text("p", `${flags} · ${api.calls} call(s) · API ID ${api.api_id}${pluginShare(api.plugin_share)}`, { class: "muted small" }),
    api.reasons.length ? el("ul", { class: "hooks-reasons" }, api.reasons.map((r) => text("li", r.text, { "data-code": r.code }))) : null,
    api.hooks.length ? el("table", { class: "hooks-table" },
      el("thead", {}, el("tr", {}, ["hook type", "name", "calls", "last seen", "p50", "p99", "outcomes", "fires?"].map((h) => text("th", h)))),
      el("tbody", {}, rows)) : text("p", "No hooks configured.", { class: "muted small" }));
}

function pluginShare(share) {
  if (!share) return "";
  return ` · ${(share.share * 100).toFixed(1)}% of a request's time (first hook to last) in plugins, over ${share.journeys} request(s)`;
}

function verdict(hook, api) {
  const lines = [];
  if (hook.fires) lines.push(text("span", "✓ fires", { class: "hooks-yes" }));
  else if (api.reasons.length) lines.push(text("span", "✗ not called: see the API's reasons above", { class: "hooks-no" }));
  for (const r of hook.reasons) lines.push(text("span", `✗ ${r.text}`, { class: "hooks-no", "data-code": r.code }));
  if (!hook.fires && !hook.reasons.length && !api.reasons.length) lines.push(text("span", "no call seen yet", { class: "muted" }));
  for (const w of hook.warnings) lines.push(text("span", `⚠ ${w.text}`, { class: "hooks-warn", "data-code": w.code }));
  return lines;
}
