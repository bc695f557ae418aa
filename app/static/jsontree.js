// A foldable JSON tree that builds only what is open: children are made on first expand, big
// arrays and objects are shown as ranges of indexes ([0 … 99], [100 … 199], …) opened one at a
// time, and long strings are cut until asked. A 1 MB body costs a few hundred nodes, not 270,000.
import { button, el, text } from "./dom.js";

const RANGE = 100;          // entries per range of a big array or object
const OPEN_DEPTH = 2;       // levels open at first, while the budget lasts
const OPEN_BUDGET = 400;    // entries built up front, in all
const STRING_CUT = 2000;    // characters of a string shown before "show all"

/** The tree of `value`; `depth` 0 for a document's root. */
export function jsonTree(value, depth = 0) {
  return node(value, depth, { left: OPEN_BUDGET });
}

function node(value, depth, budget) {
  if (value === null || typeof value !== "object") return scalar(value);
  const isArray = Array.isArray(value);
  const keys = isArray ? null : Object.keys(value);
  const count = isArray ? value.length : keys.length;
  const [open, close] = isArray ? ["[", "]"] : ["{", "}"];
  if (!count) return text("span", open + close, { class: "json-punct" });
  const details = el("details", { class: "json-node" },
    el("summary", {}, text("span", `${open} ${count} ${isArray ? (count === 1 ? "item" : "items") : (count === 1 ? "key" : "keys")} ${close}`, { class: "json-punct" })));
  const fill = () => {
    const children = entries(value, keys, 0, count, depth, budget);
    details.append(children);
    children.dispatchEvent(new CustomEvent("json-rendered", { bubbles: true }));
  };
  const small = Math.min(count, RANGE);
  if (depth < OPEN_DEPTH && budget.left >= small) {
    budget.left -= small;
    details.open = true;
    fill();
  } else {
    details.addEventListener("toggle", fill, { once: true });
  }
  return details;
}

/** Entries lo..hi-1 of an array (keys null) or an object; ranges of ranges when there are many. */
function entries(value, keys, lo, hi, depth, budget) {
  const list = el("div", { class: "json-children" });
  const size = hi - lo;
  if (size <= RANGE) {
    for (let i = lo; i < hi; i++) list.append(entry(value, keys, i, depth, budget));
    return list;
  }
  // Each range holds RANGE, RANGE², … entries: at most RANGE ranges per level.
  let span = RANGE;
  while (size / span > RANGE) span *= RANGE;
  for (let start = lo; start < hi; start += span) {
    const end = Math.min(hi, start + span);
    const range = el("details", { class: "json-range" },
      el("summary", {}, text("span", `[${start} … ${end - 1}]`, { class: "json-index" })));
    range.addEventListener("toggle", () => {
      const children = entries(value, keys, start, end, depth, { left: 0 });
      range.append(children);
      children.dispatchEvent(new CustomEvent("json-rendered", { bubbles: true }));
    }, { once: true });
    list.append(el("div", { class: "json-entry" }, range));
  }
  return list;
}

function entry(value, keys, i, depth, budget) {
  const child = keys ? value[keys[i]] : value[i];
  return el("div", { class: "json-entry" },
    keys ? text("span", JSON.stringify(keys[i]), { class: "json-key" }) : text("span", String(i), { class: "json-index" }),
    text("span", ": ", { class: "json-punct" }),
    node(child, depth + 1, budget));
}

function scalar(value) {
  const kind = value === null ? "null" : typeof value;
  const shown = JSON.stringify(value);
  if (kind !== "string" || shown.length <= STRING_CUT) return text("span", shown, { class: `json-${kind}` });
  const span = text("span", `${shown.slice(0, STRING_CUT)}…`, { class: "json-string" });
  const more = button(`show all ${shown.length.toLocaleString()} characters`, () => {
    span.textContent = shown;
    more.remove();
  }, { class: "link small" });
  return el("span", {}, span, " ", more);
}
