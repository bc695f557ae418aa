// DOM helpers. Every value shown comes from the network and is attacker-controlled:
// text goes in through textContent only, never innerHTML.

/** el("div", {class: "x", title: "y"}, child, "text", ...) */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

export function append(node, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function text(tag, value, attrs = {}) {
  const node = el(tag, attrs);
  node.textContent = value ?? "";
  return node;
}

/** A two-column table of key → value; values may be nodes. */
export function kvTable(entries, { empty = "none", className = "kv" } = {}) {
  const rows = entries.filter(([, v]) => v !== undefined);
  if (!rows.length) return text("p", empty, { class: "muted small" });
  return el("table", { class: className },
    el("tbody", {}, rows.map(([k, v]) => el("tr", {}, text("th", k), el("td", {}, v instanceof Node ? v : String(v))))));
}

export function section(title, ...children) {
  return el("section", { class: "card" }, text("h3", title), ...children);
}

export function button(label, onclick, attrs = {}) {
  return el("button", { type: "button", ...attrs, onclick }, label);
}

export async function copyText(value, btn) {
  try {
    await navigator.clipboard.writeText(value);
    flash(btn, "copied");
  } catch {
    flash(btn, "copy failed");
  }
}

function flash(btn, message) {
  if (!btn) return;
  const before = btn.textContent;
  btn.textContent = message;
  setTimeout(() => { btn.textContent = before; }, 1200);
}

/** "1 change", "2 changes": a count with its noun in the right number. */
export function plural(count, one, many = `${one}s`) {
  return `${count} ${count === 1 ? one : many}`;
}

export function formatBytes(n) {
  if (n === null || n === undefined) return "";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

// One formatter for every row: toLocaleTimeString would build a new one per call.
const TIME = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "numeric", second: "numeric", hour12: false });

export function formatTime(seconds) {
  const d = new Date(seconds * 1000);
  return TIME.format(d) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

export function formatDuration(ms) {
  if (ms === null || ms === undefined) return "";
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 100) return `${ms.toFixed(1)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

/**
 * The status the client got, as the list shows it: the HTTP status the hook's reply led to
 * (an override, an auth refusal, the upstream's), "dropped", or, while the request just
 * continues, the status a Response hook saw; null when there is none.
 */
export function effectiveStatus(c) {
  const outcome = c.outcome_status;
  if (typeof outcome === "number") return outcome;
  if (outcome === "dropped") return "dropped";
  return c.status || null;
}

/** For sorting: HTTP statuses in order, a dropped connection after them all. */
export function statusRank(c) {
  const status = effectiveStatus(c);
  if (status === "dropped") return 1000;
  return status ?? 0;
}

export function statusClass(status) {
  if (!status) return "";
  if (status === "dropped") return "s-5xx";
  return `s-${String(status)[0]}xx`;
}
