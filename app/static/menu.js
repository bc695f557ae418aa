// Menu buttons (Export, Copy as): open with click, Enter, Space or ↓; arrows move; Esc closes.

const open = new Map(); // close function -> [button, menu] of each open menu

// One listener for every menu (the detail's menus come and go with each capture shown).
document.addEventListener("click", (e) => {
  for (const [close, [buttonEl, menuEl]] of open) {
    if (!menuEl.contains(e.target) && !buttonEl.contains(e.target)) close(false);
  }
});

export function menuButton(buttonEl, menuEl, { onOpen } = {}) {
  const items = () => [...menuEl.querySelectorAll("[role='menuitem']")].filter((i) => !i.hidden);
  const show = (focusFirst) => {
    onOpen?.();
    menuEl.hidden = false;
    buttonEl.setAttribute("aria-expanded", "true");
    open.set(close, [buttonEl, menuEl]);
    if (focusFirst) items()[0]?.focus();
  };
  function close(returnFocus = true) {
    if (menuEl.hidden) return;
    menuEl.hidden = true;
    buttonEl.setAttribute("aria-expanded", "false");
    open.delete(close);
    if (returnFocus && menuEl.contains(document.activeElement)) buttonEl.focus();
  }
  buttonEl.addEventListener("click", (e) => {
    if (menuEl.hidden) show(e.detail === 0); // detail 0: Enter or Space, not a pointer click
    else close();
  });
  buttonEl.addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown") { e.preventDefault(); show(true); }
  });
  menuEl.addEventListener("keydown", (e) => {
    const list = items();
    const at = list.indexOf(document.activeElement);
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      list[(at + (e.key === "ArrowDown" ? 1 : list.length - 1)) % list.length]?.focus();
    } else if (e.key === "Home" || e.key === "End") {
      e.preventDefault();
      list[e.key === "Home" ? 0 : list.length - 1]?.focus();
    } else if (e.key === "Tab") {
      close(false);
    }
  });
  menuEl.addEventListener("click", (e) => {
    const item = e.target.closest("[role='menuitem']");
    if (!item) return;
    if (item.getAttribute("aria-disabled") === "true") { e.preventDefault(); return; }
    close();
  });
  return { close, show };
}

/** Close the open menu, if any: what Esc does first. */
export function closeOpenMenu() {
  const [close] = open.keys();
  if (!close) return false;
  close();
  return true;
}
