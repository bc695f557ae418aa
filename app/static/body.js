// The body viewer: JSON folded, text as text, HTML/XML as source (never rendered),
// images through <img> from a blob URL, anything else as a hex dump.
import { button, copyText, el, formatBytes, text } from "./dom.js";

const IMAGE_TYPES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp", "image/svg+xml"]);
const HEX_LIMIT = 64 * 1024;
const TREE_OPEN_DEPTH = 2;

export function base64ToBytes(b64) {
  const bin = atob(b64 || "");
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return bytes;
}

/** view: the API's body view; rawBase64: the body's bytes as base64 (the protobuf JSON field). */
export function bodyViewer(title, view, rawBase64) {
  const raw = base64ToBytes(rawBase64);
  const shown = view.encoding === "gzip" && view.inflated_base64 ? base64ToBytes(view.inflated_base64) : raw;
  const mediaType = view.media_type || "application/octet-stream";
  const meta = [formatBytes(view.size), mediaType];
  if (view.encoding) meta.push(`${view.encoding}, ${formatBytes(view.inflated_size)} inflated`);

  const download = button("Download", () => {
    const url = URL.createObjectURL(new Blob([raw], { type: "application/octet-stream" }));
    const a = el("a", { href: url, download: `${title.replace(/\W+/g, "-")}.bin` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  });
  const copy = button("Copy", (e) => copyText(view.text ?? rawBase64 ?? "", e.currentTarget),
    { title: view.text !== null ? "copy as text" : "copy as base64" });

  return el("div", { class: "body-viewer", "data-media-type": mediaType },
    el("div", { class: "body-head" }, text("strong", title), text("span", meta.join(" · "), { class: "muted" }),
      el("span", { class: "spacer" }), copy, download),
    bodyContent(view, shown, mediaType));
}

function bodyContent(view, bytes, mediaType) {
  if (IMAGE_TYPES.has(mediaType)) {
    // As an <img>, even an SVG with script in it is only ever an image.
    const url = URL.createObjectURL(new Blob([bytes], { type: mediaType }));
    return el("div", { class: "image-preview" }, el("img", { src: url, alt: "body preview", class: "body-image" }));
  }
  if (view.json !== null && view.json !== undefined) return el("div", { class: "json-tree" }, jsonTree(view.json, 0));
  if (view.text !== null && view.text !== undefined) return text("pre", view.text, { class: "body-text" });
  return text("pre", hexDump(bytes), { class: "hexdump" });
}

export function hexDump(bytes) {
  const lines = [];
  const end = Math.min(bytes.length, HEX_LIMIT);
  for (let offset = 0; offset < end; offset += 16) {
    const row = bytes.subarray(offset, Math.min(offset + 16, end));
    const hex = Array.from(row, (b) => b.toString(16).padStart(2, "0")).join(" ");
    const ascii = Array.from(row, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : ".")).join("");
    lines.push(`${offset.toString(16).padStart(8, "0")}  ${hex.padEnd(47)}  ${ascii}`);
  }
  if (bytes.length > end) lines.push(`… ${bytes.length - end} more bytes (download to see them all)`);
  return lines.join("\n");
}

/** A foldable JSON tree from <details> elements. */
export function jsonTree(value, depth) {
  if (value === null || typeof value !== "object") return text("span", JSON.stringify(value), { class: `json-${typeOf(value)}` });
  const entries = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
  const [open, close] = Array.isArray(value) ? ["[", "]"] : ["{", "}"];
  if (!entries.length) return text("span", open + close, { class: "json-punct" });
  const details = el("details", { open: depth < TREE_OPEN_DEPTH },
    el("summary", {}, text("span", `${open} ${entries.length} ${Array.isArray(value) ? "items" : "keys"} ${close}`, { class: "json-punct" })));
  const list = el("div", { class: "json-children" });
  for (const [key, child] of entries) {
    list.append(el("div", { class: "json-entry" },
      Array.isArray(value) ? null : text("span", JSON.stringify(String(key)), { class: "json-key" }),
      Array.isArray(value) ? null : text("span", ": ", { class: "json-punct" }),
      jsonTree(child, depth + 1)));
  }
  details.append(list);
  return details;
}

function typeOf(value) {
  if (value === null) return "null";
  return typeof value;
}
