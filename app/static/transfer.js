// Import and Clear: each says when it failed, and Clear asks first (it empties every viewer's list).

/** els: importFile, clear, dialog, count; liveCount() -> captures Clear would remove. */
export function installTransfer({ importFile, clear, dialog, count }, { liveCount, notice, unreachable }) {
  importFile.addEventListener("change", async (e) => {
    const file = e.target.files[0];
    e.target.value = "";
    if (!file) return;
    let res;
    try {
      res = await fetch("/api/import", { method: "POST", body: file, headers: { "Content-Type": "application/json" } });
    } catch {
      notice("Import failed: the inspector is not answering.");
      unreachable();
      return;
    }
    const body = await res.json().catch(() => ({ detail: `the inspector answered ${res.status}` }));
    notice(res.ok ? `Imported ${body.imported} capture(s) from ${file.name}.` : `Import failed: ${body.detail}`);
  });

  clear.addEventListener("click", () => {
    count.textContent = String(liveCount());
    dialog.showModal();
  });
  dialog.addEventListener("close", async () => {
    if (dialog.returnValue !== "clear") return;
    dialog.returnValue = "";
    let res;
    try {
      res = await fetch("/api/captures", { method: "DELETE" });
    } catch {
      notice("Clear failed: the inspector is not answering. Nothing was cleared.");
      unreachable();
      return;
    }
    if (!res.ok) notice(`Clear failed: ${(await res.json().catch(() => ({}))).detail || res.status}`);
  });
}
