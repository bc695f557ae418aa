// Pin, mark and comment a capture: kept by the inspector while pinned, whatever its buffer evicts
// (PUT/DELETE /api/captures/{id}/pin, GET /api/pins). The list shows a pin and the mark's colour.
import { button, el, text } from "./dom.js";

const MARKS = ["", "red", "orange", "green", "blue", "purple"];
export const pins = new Map(); // capture id -> {note, mark}

/** What the inspector has pinned (at start); `changed(id)` redraws the rows. */
export async function loadPins(changed) {
  try {
    const res = await fetch("/api/pins");
    if (!res.ok) return;
    const body = await res.json();
    pins.clear();
    for (const p of body.items) pins.set(String(p.id), { note: p.note, mark: p.mark });
    changed(null);
  } catch {
    // the inspector is not answering: the list shows no pins until it does
  }
}

/** The detail header's pin controls; `changed(id)` tells the list. */
export function pinControls(detail, changed) {
  const id = String(detail.id);
  const box = el("div", { class: "pin-controls" });
  const status = text("span", "", { class: "muted small pin-status", role: "status" });
  const draw = () => {
    const pin = pins.get(id);
    const toggle = button(pin ? "📌 Pinned" : "Pin", () => (pin ? unpin() : save("", "")), {
      class: "pin", "aria-pressed": String(Boolean(pin)),
      title: pin ? "Unpin: the buffer's bounds apply to it again" : "Keep this capture whatever the buffer evicts, with a note",
    });
    const parts = [toggle];
    if (pin) {
      const note = el("input", { type: "text", class: "pin-note", maxlength: "2000", placeholder: "note", "aria-label": "Note", value: pin.note });
      const mark = el("select", { class: "pin-mark", "aria-label": "Mark" }, MARKS.map((m) => el("option", { value: m, selected: m === pin.mark }, m || "no mark")));
      note.addEventListener("change", () => save(note.value, mark.value));
      mark.addEventListener("change", () => save(note.value, mark.value));
      parts.push(note, mark);
    }
    box.replaceChildren(...parts, status);
  };
  const save = async (note, mark) => {
    const res = await fetch(`/api/captures/${detail.id}/pin`, {
      method: "PUT", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ note, mark }),
    }).catch(() => null);
    const body = res ? await res.json().catch(() => ({})) : { detail: "the inspector is not answering" };
    if (!res || !res.ok) {
      status.textContent = `Not pinned: ${body.detail || res.status}`;
      return;
    }
    pins.set(id, { note: body.note, mark: body.mark });
    draw();
    status.textContent = `${body.limits.items} of ${body.limits.max_items} pinned`;
    changed(id);
  };
  const unpin = async () => {
    const res = await fetch(`/api/captures/${detail.id}/pin`, { method: "DELETE" }).catch(() => null);
    if (res && (res.ok || res.status === 404)) {
      pins.delete(id);
      draw();
      changed(id);
    }
  };
  draw();
  return box;
}
