// The body viewer: JSON folded, text as text, HTML/XML as source (never rendered),
// images through <img> from data: URLs (SVG as a picture drawn on a canvas, and as source),
// anything else as a hex dump.
import { button, copyText, el, formatBytes, text } from "./dom.js";
import { jsonTree } from "./jsontree.js";
import { prettyMarkup } from "./pretty.js";

export { jsonTree };

const RASTER_TYPES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);
// The largest picture an SVG is drawn as, per side.
const SVG_RASTER_MAX = 2048;
const HEX_LIMIT = 64 * 1024;

export function base64ToBytes(b64) {
  const bin = atob(b64 || "");
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return bytes;
}

const EXTENSIONS = {
  "application/json": "json", "text/html": "html", "application/xml": "xml", "image/svg+xml": "svg", "text/plain": "txt",
  "image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp",
};

/**
 * view: the API's body view; rawBase64: the body's bytes as base64 (the protobuf JSON field);
 * fileName: the downloads' name without extension (capture-12-response-body); source: {id, which}
 * of the capture the body belongs to, to download it from the inspector.
 */
export function bodyViewer(title, view, rawBase64, { fileName = title.replace(/\W+/g, "-"), source = null } = {}) {
  const raw = base64ToBytes(rawBase64);
  const shown = view.encoding === "gzip" && view.inflated_base64 ? base64ToBytes(view.inflated_base64) : raw;
  const mediaType = view.media_type || "application/octet-stream";
  const meta = [formatBytes(view.size), mediaType];
  if (view.encoding) meta.push(`${view.encoding}, ${formatBytes(view.inflated_size)} inflated`);

  const extension = EXTENSIONS[mediaType] || "bin";
  // From the inspector when the body is a capture's (GET /api/captures/{id}/body/{which}: a real
  // file name, never shown inline); else from the bytes the page has.
  const fetchBody = (decoded) => source && (() => saveUrl(`/api/captures/${source.id}/body/${source.which}${decoded ? "?decoded=true" : ""}`));
  const downloads = [];
  if (shown !== raw) {
    downloads.push(button("Download decoded", fetchBody(true) || (() => save(shown, `${fileName}.${extension}`)), { "data-download": "decoded" }));
    downloads.push(button("Download as sent", fetchBody(false) || (() => save(raw, `${fileName}.${extension}.gz`)), { "data-download": "raw" }));
  } else {
    downloads.push(button("Download", fetchBody(false) || (() => save(raw, `${fileName}.${extension}`)), { "data-download": "raw" }));
  }
  const copy = button("Copy", (e) => copyText(view.text ?? rawBase64 ?? "", e.currentTarget),
    { title: view.text !== null ? "copy as text" : "copy as base64" });

  return el("div", { class: "body-viewer", "data-media-type": mediaType },
    el("div", { class: "body-head" }, text("strong", title), text("span", meta.join(" · "), { class: "muted" }),
      el("span", { class: "spacer" }), copy, ...downloads),
    bodyContent(view, shown, mediaType));
}

/** Save bytes under a file name; the blob's URL is released as soon as the download has it. */
function saveUrl(url) {
  const a = el("a", { href: url, download: "" }); // the inspector's Content-Disposition names the file
  document.body.append(a);
  a.click();
  a.remove();
}

function save(bytes, name) {
  // Saved as a download, never opened: an HTML or SVG body does not run in this origin.
  const url = URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
  const a = el("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 0);
}

function bodyContent(view, bytes, mediaType) {
  // No captured body ever gets a URL on the inspector's origin: a blob URL opened in a new tab
  // is a document of this origin, and an SVG there runs its script with the login cookie.
  // Raster images are shown from data: URLs (an opaque origin, and top-level navigation to
  // them is blocked); an SVG is drawn to a canvas and shown as a PNG, next to its source as text.
  if (RASTER_TYPES.has(mediaType)) return rasterPreview(bytes, mediaType);
  if (mediaType === "image/svg+xml") {
    const source = view.text ?? new TextDecoder().decode(bytes);
    return el("div", { class: "svg-body" }, svgPreview(bytes), markupOrText(source, mediaType));
  }
  if (view.json !== null && view.json !== undefined) return el("div", { class: "json-tree" }, jsonTree(view.json, 0));
  if (view.text !== null && view.text !== undefined) return markupOrText(view.text, mediaType);
  return text("pre", hexDump(bytes), { class: "hexdump" });
}

/** HTML and XML re-indented (as text, never rendered), with the source a click away. */
function markupOrText(source, mediaType) {
  const markup = mediaType === "text/html" || mediaType === "application/xml" || mediaType === "image/svg+xml";
  const pretty = markup ? prettyMarkup(source, { html: mediaType === "text/html" }) : null;
  if (pretty === null || pretty === source) return text("pre", source, { class: "body-text" });
  const pre = text("pre", pretty, { class: "body-text", "data-view": "pretty" });
  const toggle = button("show source", () => {
    const showPretty = pre.dataset.view !== "pretty";
    pre.textContent = showPretty ? pretty : source;
    pre.dataset.view = showPretty ? "pretty" : "source";
    toggle.textContent = showPretty ? "show source" : "show indented";
  }, { class: "link small body-toggle" });
  return el("div", { class: "markup" }, toggle, pre);
}

function dataUrl(bytes, mediaType) {
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return `data:${mediaType};base64,${btoa(bin)}`;
}

function rasterPreview(bytes, mediaType) {
  const size = text("span", "", { class: "image-size muted small" });
  const img = el("img", { src: dataUrl(bytes, mediaType), alt: "body preview", class: "body-image" });
  img.addEventListener("load", () => { size.textContent = `${img.naturalWidth} × ${img.naturalHeight} px`; }, { once: true });
  img.addEventListener("error", () => { size.textContent = "not a decodable image"; }, { once: true });
  return el("div", { class: "image-preview" }, img, size);
}

/** The SVG drawn as a PNG: loaded as an image (where SVG script never runs) and rasterised. */
function svgPreview(bytes) {
  const size = text("span", "", { class: "image-size muted small" });
  const preview = el("div", { class: "image-preview" }, size);
  const picture = new Image();
  picture.addEventListener("load", () => {
    const width = Math.min(picture.naturalWidth || 300, SVG_RASTER_MAX);
    const height = Math.min(picture.naturalHeight || 150, SVG_RASTER_MAX);
    const canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    try {
      canvas.getContext("2d").drawImage(picture, 0, 0, width, height);
      const img = el("img", { src: canvas.toDataURL("image/png"), alt: "SVG body drawn as a picture", class: "body-image" });
      preview.prepend(img);
      size.textContent = `${width} × ${height} px, SVG drawn as a picture`;
    } catch {
      size.textContent = "this SVG cannot be drawn as a picture: source below";
    }
  }, { once: true });
  picture.addEventListener("error", () => { size.textContent = "not a drawable SVG: source below"; }, { once: true });
  picture.src = dataUrl(bytes, "image/svg+xml");
  return preview;
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
