// The list's layout controls: resizable columns and the split between the list and the detail,
// both kept in local storage; and the column heads, which scroll sideways with the rows.
// Widths are CSS variables the row grid reads (style.css), so the 10,000 rows need no update.

const STORE_KEY = "tyk-inspector.layout";
const MIN_COLUMN = 40;
const MIN_PANE = 280;
const STEP = 16; // a key press moves an edge this far
// The least width of each resizable column in the default template (style.css --cols): what a
// resized one adds to the rows' width (--row-extra), so the list scrolls sideways instead of clipping.
const DEFAULT_MIN = { name: 80, api: 60, path: 100 };

function load() {
  try {
    const saved = JSON.parse(localStorage.getItem(STORE_KEY) || "{}");
    return saved && typeof saved === "object" ? saved : {};
  } catch {
    return {};
  }
}

function save(layout) {
  try {
    localStorage.setItem(STORE_KEY, JSON.stringify(layout));
  } catch {
    // storage full or off: the layout lasts for this page only
  }
}

/**
 * els: pane (.list-pane), header (.list-header), list (#list), layout (.layout), splitter.
 * Resizable columns are the header cells with data-resize="NAME" (CSS variable --w-NAME).
 */
export function installColumns({ pane, header, list, layout, splitter }) {
  const state = load();
  state.columns = state.columns && typeof state.columns === "object" ? state.columns : {};
  const apply = () => {
    let extra = 0;
    for (const [name, width] of Object.entries(state.columns)) {
      if (!Number.isFinite(width) || !(name in DEFAULT_MIN)) continue;
      pane.style.setProperty(`--w-${name}`, `${Math.round(width)}px`);
      extra += Math.round(width) - DEFAULT_MIN[name];
    }
    pane.style.setProperty("--row-extra", `${extra}px`);
    if (Number.isFinite(state.split)) layout.style.setProperty("--list-width", `${Math.round(state.split)}px`);
    layout.classList.toggle("split-set", Number.isFinite(state.split));
    requestAnimationFrame(announce);
  };
  // A focusable separator tells assistive technology where it is: the width it sets, in px.
  const announce = () => {
    for (const handle of header.querySelectorAll(".col-resize")) {
      value(handle, handle.parentElement.getBoundingClientRect().width, MIN_COLUMN, 2000);
    }
    value(splitter, pane.getBoundingClientRect().width, MIN_PANE, layout.getBoundingClientRect().width - MIN_PANE);
  };
  new ResizeObserver(announce).observe(layout);
  apply();

  // The heads sit outside the scrolling list (so they stay when it scrolls down) and follow it sideways.
  list.addEventListener("scroll", () => { header.scrollLeft = list.scrollLeft; }, { passive: true });

  for (const cell of header.querySelectorAll("[data-resize]")) {
    const name = cell.dataset.resize;
    const label = cell.dataset.label || name;
    const handle = document.createElement("span");
    handle.className = "col-resize";
    handle.setAttribute("role", "separator");
    handle.setAttribute("aria-orientation", "vertical");
    handle.setAttribute("aria-label", `Resize the ${label} column (←/→, double-click to reset)`);
    handle.tabIndex = 0;
    cell.append(handle);
    value(handle, cell.getBoundingClientRect().width, MIN_COLUMN, 2000);
    const set = (width) => {
      state.columns[name] = Math.max(MIN_COLUMN, width);
      apply();
    };
    drag(handle, () => cell.getBoundingClientRect().width, set, () => save(state));
    handle.addEventListener("keydown", (e) => {
      const delta = { ArrowLeft: -STEP, ArrowRight: STEP }[e.key];
      if (!delta) return;
      e.preventDefault();
      set(cell.getBoundingClientRect().width + delta);
      save(state);
    });
    handle.addEventListener("dblclick", () => {
      delete state.columns[name];
      pane.style.removeProperty(`--w-${name}`);
      apply();
      save(state);
    });
  }

  const setSplit = (width) => {
    const most = layout.getBoundingClientRect().width - MIN_PANE;
    state.split = Math.max(MIN_PANE, Math.min(most, width));
    apply();
  };
  drag(splitter, () => pane.getBoundingClientRect().width, setSplit, () => save(state));
  splitter.addEventListener("keydown", (e) => {
    const delta = { ArrowLeft: -STEP * 2, ArrowRight: STEP * 2 }[e.key];
    if (!delta) return;
    e.preventDefault();
    setSplit(pane.getBoundingClientRect().width + delta);
    save(state);
  });
  splitter.addEventListener("dblclick", () => {
    delete state.split;
    layout.style.removeProperty("--list-width");
    layout.classList.remove("split-set");
    save(state);
  });
}

/** Pointer dragging of `handle`: `set(start + dx)` while it moves, `done()` when let go. */
function drag(handle, startWidth, set, done) {
  handle.addEventListener("pointerdown", (e) => {
    if (e.button !== 0) return;
    e.preventDefault();
    e.stopPropagation(); // not a click on the column's sort button
    const x0 = e.clientX;
    const w0 = startWidth();
    handle.setPointerCapture(e.pointerId);
    handle.classList.add("dragging");
    const move = (m) => set(w0 + m.clientX - x0);
    const up = () => {
      handle.removeEventListener("pointermove", move);
      handle.removeEventListener("pointerup", up);
      handle.removeEventListener("pointercancel", up);
      handle.classList.remove("dragging");
      done();
    };
    handle.addEventListener("pointermove", move);
    handle.addEventListener("pointerup", up);
    handle.addEventListener("pointercancel", up);
  });
  handle.addEventListener("click", (e) => e.stopPropagation());
}

function value(separator, now, min, max) {
  separator.setAttribute("aria-valuemin", String(Math.round(min)));
  separator.setAttribute("aria-valuemax", String(Math.max(Math.round(min), Math.round(max))));
  separator.setAttribute("aria-valuenow", String(Math.round(now)));
}
