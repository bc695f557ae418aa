// Compare two captures: "Compare…" on one makes it the base, "Compare with #A" on another shows
// both side by side in Tyk's terms (GET /api/compare): the outcome of each, what the gateway sent
// each (bodies by JSON field), and what each reply changed.
import { button, el, section, text } from "./dom.js";

let base = null; // {id, kind, label} of the capture chosen first

/** The header's compare buttons for `detail`; `panel` is where the comparison is shown. */
export function compareControls(detail) {
  const box = el("span", { class: "compare-controls" });
  const draw = () => {
    const parts = [];
    if (base && base.id !== detail.id && base.kind === detail.kind) {
      parts.push(button(`Compare with #${base.id}`, () => showComparison(base.id, detail.id), { class: "compare-with" }));
    }
    parts.push(button(base?.id === detail.id ? "Comparing from here…" : "Compare…", () => {
      base = { id: detail.id, kind: detail.kind };
      draw();
    }, {
      class: "compare-base", "aria-pressed": String(base?.id === detail.id),
      title: "Compare this capture with another: select the other one, then “Compare with”",
    }));
    box.replaceChildren(...parts);
  };
  draw();
  return box;
}

async function showComparison(a, b) {
  const root = document.getElementById("detail");
  const tabs = root.querySelector(".tabs");
  const panel = root.querySelector(".tab-panel");
  if (!panel) return;
  const view = el("div", { class: "comparison", role: "region", "aria-label": `Comparison of #${a} and #${b}` },
    text("p", "Comparing…", { class: "muted" }));
  const before = [...panel.childNodes];
  const close = () => {
    view.remove();
    if (tabs) tabs.hidden = false;
    panel.hidden = false;
    panel.replaceChildren(...before);
  };
  if (tabs) tabs.hidden = true;
  panel.replaceChildren(view);
  let doc;
  try {
    const res = await fetch(`/api/compare?a=${a}&b=${b}`);
    doc = await res.json();
    if (!res.ok) throw new Error(doc.detail || `the inspector answered ${res.status}`);
  } catch (err) {
    view.replaceChildren(text("p", `Cannot compare: ${err.message}`, { class: "error-text" }), button("Close", close));
    return;
  }
  view.replaceChildren(
    el("div", { class: "compare-head" }, el("strong", {}, `#${a} ↔ #${b}`), button("Close comparison", close, { class: "link" })),
    factsTable(doc),
    doc.outcome[0] || doc.outcome[1] ? section("What the gateway does", outcomeTable(doc)) : null,
    section(`What the gateway sent (${doc.sent.length}${doc.sent_cut ? "+" : ""} difference${doc.sent.length === 1 ? "" : "s"})`,
      doc.sent.length ? differencesTable(doc.sent, a, b) : text("p", "the same", { class: "muted small" })),
    doc.changes || doc.changes_b ? section("What each reply changed", changesTables(doc, a, b)) : null,
  );
}

const cell = (value) => text("td", value === null || value === undefined ? "—" : String(value));

function factsTable(doc) {
  const [fa, fb] = doc.facts;
  const rows = [["hook", `${fa.hook_type} ${fa.hook_name}`, `${fb.hook_type} ${fb.hook_name}`],
    ["API ID", fa.api_id, fb.api_id], ["request", `${fa.method} ${fa.path}`, `${fb.method} ${fb.path}`],
    ["answered by", fa.answered_by, fb.answered_by], ["duration", `${fa.duration_ms} ms`, `${fb.duration_ms} ms`],
    ["error", fa.error, fb.error]];
  return grid(["", `#${fa.id}`, `#${fb.id}`], rows.map(([k, x, y]) => el("tr", { class: x === y ? "same" : "differs" }, text("th", k), cell(x), cell(y))));
}

function outcomeTable(doc) {
  const [oa, ob] = doc.outcome;
  return grid(["", `#${doc.a}`, `#${doc.b}`], [
    el("tr", {}, text("th", "status"), cell(oa?.status), cell(ob?.status)),
    el("tr", {}, text("th", "result"), cell(oa?.result), cell(ob?.result)),
    el("tr", {}, text("th", "summary"), cell(oa?.summary), cell(ob?.summary)),
  ]);
}

function differencesTable(differences, a, b) {
  return grid(["field", `#${a}`, `#${b}`], differences.map((d) => el("tr", {}, text("td", d.path, { class: "mono" }), cell(d.a), cell(d.b))));
}

function changesTables(doc, a, b) {
  const describe = (c) => `${c.kind} ${c.what}${c.after !== undefined && c.after !== null ? ` = ${c.after}` : ""}${c.ignored ? " (ignored)" : ""}`;
  const only = (mine, theirs) => {
    const other = new Set((theirs || []).map(describe));
    return (mine || []).map(describe).filter((d) => !other.has(d));
  };
  const list = (items) => (items.length ? el("ul", {}, items.map((i) => text("li", i))) : text("p", "nothing of its own", { class: "muted small" }));
  const same = (doc.changes || []).map(describe).filter((d) => new Set((doc.changes_b || []).map(describe)).has(d));
  return el("div", { class: "compare-changes" },
    text("h4", `Only #${a}'s reply`), doc.changes === null ? text("p", "no reply", { class: "muted small" }) : list(only(doc.changes, doc.changes_b)),
    text("h4", `Only #${b}'s reply`), doc.changes_b === null ? text("p", "no reply", { class: "muted small" }) : list(only(doc.changes_b, doc.changes)),
    text("h4", "Both"), list(same));
}

function grid(heads, rows) {
  return el("table", { class: "grid compare-table" }, el("thead", {}, el("tr", {}, heads.map((h) => text("th", h)))), el("tbody", {}, rows));
}
