// "Copy as": the capture as a curl command, a `tyk-inspector send` command, a grpcurl command or a
// pytest test, as the inspector writes them (GET /api/captures/{id}/copy?as=...).
import { button, copyText, el, text } from "./dom.js";
import { menuButton } from "./menu.js";
import { revealAllowed } from "./reveal.js";

const FORMATS = [
  ["curl", "curl (the client's request, through the gateway)"],
  ["send", "tyk-inspector send (the Object as a file)"],
  ["grpcurl", "grpcurl (the Object as JSON)"],
  ["pytest", "pytest test for a plugin server"],
];
// Copies with the credentials the inspector redacts: an explicit choice, logged by the inspector,
// absent with --redact-strict. The others read redacted values from shell variables (the pytest
// test: from environment variables).
const WITH_SECRETS = [
  ["curl", "curl with secrets (the real credentials)"],
  ["send", "tyk-inspector send with secrets"],
  ["pytest", "pytest test with secrets"],
];

/** The Copy as menu button and the box that shows what was copied. */
export function copyAsMenu(detail) {
  const id = `copy-menu-${detail.id}`;
  const trigger = button("Copy as ▾", null, { class: "copy-as", "aria-haspopup": "menu", "aria-expanded": "false", "aria-controls": id });
  const preview = el("div", { class: "copy-preview", hidden: true });
  const items = FORMATS.map(([format, label]) =>
    button(label, () => copyAs(detail.id, format, preview, trigger), { role: "menuitem", "data-format": format, tabindex: "-1" }));
  if (revealAllowed()) {
    items.push(...WITH_SECRETS.map(([format, label]) => button(label, () => copyAs(detail.id, format, preview, trigger, true),
      { role: "menuitem", "data-format": `${format}-with-secrets`, tabindex: "-1", class: "with-secrets" })));
  }
  const menu = el("div", { class: "menu-items", role: "menu", id, "aria-label": "Copy as", hidden: true }, items);
  menuButton(trigger, menu);
  return { control: el("div", { class: "menu" }, trigger, menu), preview };
}

async function copyAs(captureId, format, preview, trigger, secrets = false) {
  let res;
  const name = secrets ? `${format} with secrets` : format;
  try {
    res = await fetch(`/api/captures/${captureId}/copy?as=${format}${secrets ? "&secrets=1" : ""}`);
  } catch {
    show(preview, name, null, "The inspector is not answering.");
    return;
  }
  const type = res.headers.get("content-type") || "";
  const body = type.includes("json") ? await res.json().catch(() => ({})) : { text: await res.text() };
  if (!res.ok) {
    show(preview, name, null, body.detail || `the inspector answered ${res.status}`);
    return;
  }
  const value = body.text ?? body.command ?? body.content ?? "";
  show(preview, name, value, null);
  await copyText(value, trigger);
}

function show(preview, format, value, error) {
  preview.hidden = false;
  const close = button("close", () => { preview.hidden = true; }, { class: "link small" });
  if (error) {
    preview.replaceChildren(el("div", { class: "copy-head" }, text("span", `Copy as ${format} failed: ${error}`, { class: "error-text" }), close));
    return;
  }
  preview.replaceChildren(
    el("div", { class: "copy-head" }, text("strong", `Copied as ${format}`), text("span", "(also shown here, to copy by hand)", { class: "muted small" }), close),
    text("pre", value, { class: "copy-text", "data-format": format }));
}
