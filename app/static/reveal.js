// Redacted values: shown as "[redacted]", with a "reveal" button when the inspector allows it.
// One value per click, asked of the inspector (which logs that it was revealed, never the value);
// `--redact-strict` turns it off (the page then has data-reveal="off").
import { button, el, text } from "./dom.js";

export const REDACTED = "[redacted]";

export const revealAllowed = () => document.body.dataset.reveal === "on";

/**
 * `value` for a table cell; a redacted one gets a reveal button. `where`: {id, which, path} of the
 * value in the capture's protobuf JSON (`which`: "request" or "reply"); without it, no button.
 */
export function shownValue(value, where) {
  if (typeof value !== "string" || !value.includes(REDACTED) || !where || !revealAllowed()) return value;
  const shown = text("code", value, { class: "secret", "data-revealed": "false" });
  const toggle = button("reveal", async () => {
    if (shown.dataset.revealed === "true") {
      shown.textContent = value;
      shown.dataset.revealed = "false";
      toggle.textContent = "reveal";
      return;
    }
    toggle.disabled = true;
    try {
      const res = await fetch(`/api/captures/${where.id}/reveal`, {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ which: where.which || "request", path: where.path }),
      });
      const body = await res.json().catch(() => ({}));
      if (!res.ok) throw new Error(body.detail || `the inspector answered ${res.status}`);
      shown.textContent = body.value;
      shown.dataset.revealed = "true";
      toggle.textContent = "hide";
    } catch (err) {
      toggle.title = `Not revealed: ${err.message}`;
      toggle.textContent = "reveal failed";
    } finally {
      toggle.disabled = false;
    }
  }, { class: "link small reveal", title: "Show the value as captured (the inspector logs that it was revealed, not the value)" });
  return el("span", { class: "redacted" }, shown, " ", toggle);
}

/** `where` one step further down: the value of `key` inside it. */
export const at = (where, key) => (where ? { ...where, path: [...where.path, key] } : null);
