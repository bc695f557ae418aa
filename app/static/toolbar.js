// What the toolbar says: the export links (they follow the filters and the selection), the
// counts, the paused captures waiting, the sort buttons' state, and passing notices.
import { el, plural, text } from "./dom.js";

const $ = (id) => document.getElementById(id);

/** Point the export menu's links at the filtered captures (all, as HAR, as a verify set) and the selected one (`summary`). */
export function updateExportLinks(params, summary) {
  $("export-filtered").href = `/api/export?${params}`;
  const har = new URLSearchParams(params);
  har.set("format", "har");
  $("export-har").href = `/api/export?${har}`;
  const verify = new URLSearchParams(params);
  verify.set("format", "verify"); // the server keeps the Dispatch calls alone: events are not verified
  $("export-verify").href = `/api/export?${verify}`;
  const selected = $("export-selected");
  if (summary && !summary.stale) {
    selected.href = `/api/captures/${summary.id}/export`;
    selected.setAttribute("aria-disabled", "false");
  } else {
    selected.href = "#";
    selected.setAttribute("aria-disabled", "true");
  }
}

/** "N captures", "n of N captures" when filtered, or the requests and captures when grouped. */
export function updateCounts(shown, total, requests = null) {
  $("counts").textContent = requests !== null
    ? `${plural(requests, "request")} · ${plural(total, "capture")}`
    : shown === total ? plural(total, "capture") : `${shown} of ${plural(total, "capture")}`;
}

export function updateWaiting(paused, count) {
  const waiting = $("waiting");
  waiting.hidden = !paused;
  waiting.textContent = `${count} waiting`;
}

/** Mark the sort buttons (and their column headers) with the list's order. */
export function updateSortButtons(sort) {
  for (const b of document.querySelectorAll("[data-sort]")) {
    const on = b.dataset.sort === sort.key;
    b.setAttribute("aria-pressed", String(on));
    b.dataset.direction = on ? (sort.desc ? "desc" : "asc") : "";
    const header = b.closest("[role='columnheader']");
    if (header) header.setAttribute("aria-sort", on ? (sort.desc ? "descending" : "ascending") : "none");
  }
}

let noticeTimer = 0;
/**
 * A message above the list for 15 s (or until dismissed). `actions`: [label, onclick] buttons; a
 * notice with actions stays until one is chosen or it is dismissed.
 */
export function notice(message, actions = []) {
  const box = $("notice");
  const close = () => { box.hidden = true; };
  const choices = actions.map(([label, act]) => el("button", { type: "button", class: "notice-action", onclick: () => { close(); act(); } }, label));
  box.replaceChildren(text("span", message), ...choices, el("button", { type: "button", class: "link", onclick: close }, "dismiss"));
  box.hidden = false;
  clearTimeout(noticeTimer);
  if (!actions.length) noticeTimer = setTimeout(close, 15000);
}
