// Pause and Resume: while paused, new captures wait (at most `state.maxWaiting` of them in the
// page); on resume they are shown, or read again from the server's buffer if more arrived.

/** Wire the Pause button; `receive` takes one summary, `updateWaiting` redraws the waiting count. */
export function installPause(pause, { state, receive, updateWaiting, unreachable }) {
  pause.addEventListener("click", async () => {
    state.paused = !state.paused;
    pause.setAttribute("aria-pressed", String(state.paused));
    pause.textContent = state.paused ? "Resume" : "Pause";
    if (!state.paused) {
      const overflowed = state.waitingCount > state.waiting.length;
      const waiting = state.waiting;
      state.waiting = [];
      state.waitingCount = 0;
      updateWaiting();
      if (overflowed) await catchUp(state, receive, unreachable);
      else waiting.forEach(receive);
    }
    updateWaiting();
  });
}

/** After a long pause: read what arrived from the server's buffer instead of from memory. */
async function catchUp(state, receive, unreachable) {
  const shown = state.all.filter((c) => !c.stale);
  let after = shown.length ? shown[shown.length - 1].id : 0;
  for (;;) {
    const res = await fetch(`/api/captures?after=${after}&limit=10000`).catch(() => null);
    if (!res || !res.ok) { unreachable(); return; }
    const page = await res.json();
    page.items.forEach(receive);
    if (!page.next_after) return;
    after = page.next_after;
  }
}
