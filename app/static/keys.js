// Keyboard shortcuts. They never fire while the user types, and Esc does one thing at a time:
// close a menu or dialog, else empty the filter box, else leave a field, else reset the filters.
import { closeOpenMenu } from "./menu.js";

export function isTyping(target) {
  if (!(target instanceof HTMLElement)) return false;
  if (target.isContentEditable) return true;
  if (target instanceof HTMLTextAreaElement || target instanceof HTMLSelectElement) return true;
  if (target instanceof HTMLInputElement) return !["checkbox", "radio", "button", "submit", "reset"].includes(target.type);
  return false;
}

/** actions: move(delta), expand(open), search(), resetFilters() -> bool (false when there was nothing to reset). */
export function installKeys(actions) {
  document.addEventListener("keydown", (e) => {
    if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "Escape") {
      if (document.querySelector("dialog[open]")) return; // the dialog closes itself
      if (closeOpenMenu()) { e.preventDefault(); return; }
      const target = e.target;
      if (target instanceof HTMLInputElement && target.type === "search" && target.value) {
        e.preventDefault();
        target.value = "";
        target.dispatchEvent(new Event("input", { bubbles: true }));
        return;
      }
      if (isTyping(target) || target instanceof HTMLInputElement) { target.blur(); return; }
      actions.resetFilters();
      return;
    }
    if (isTyping(e.target)) return;
    // Inside the tab bar, a menu or a button the arrows belong to that control.
    const inWidget = e.target instanceof HTMLElement && e.target.closest("[role='tablist'], [role='menu'], dialog");
    const move = { ArrowDown: 1, j: 1, ArrowUp: -1, k: -1 }[e.key];
    if (e.key === "/") {
      e.preventDefault();
      actions.search();
    } else if (move !== undefined && !inWidget) {
      e.preventDefault();
      actions.move(move);
    } else if (e.target?.id === "list" && (e.key === "ArrowRight" || e.key === "ArrowLeft" || e.key === "Enter")) {
      e.preventDefault();
      actions.expand({ ArrowRight: true, ArrowLeft: false, Enter: null }[e.key]);
    } else if (e.target?.id === "list" && (e.key === "Home" || e.key === "End" || e.key === "PageDown" || e.key === "PageUp")) {
      e.preventDefault();
      actions.move({ Home: -Infinity, End: Infinity, PageDown: "page", PageUp: "-page" }[e.key]);
    }
  });
}
