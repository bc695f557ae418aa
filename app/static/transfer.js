// Import and Clear: each says when it failed, and Clear asks first (it empties every viewer's list).

/** els: importFile, clear, dialog, count; liveCount() -> captures Clear would remove. */
export function installTransfer({ importFile, clear, dialog, count }, { liveCount, notice, unreachable }) {
  importFile.addEventListener("change", async (e) => {
    const file = e.target.files[0];
    e.target.value = "";
    if (file) await importFile_(file, "check", { notice, unreachable });
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

/**
 * Import `file`; `duplicates`: "check" first (the inspector answers 409 when some of its captures
 * are here already, and the user chooses), then "skip" or "keep".
 */
async function importFile_(file, duplicates, { notice, unreachable }) {
  let res;
  try {
    res = await fetch(`/api/import?duplicates=${duplicates}`, { method: "POST", body: file, headers: { "Content-Type": "application/json" } });
  } catch {
    notice("Import failed: the inspector is not answering.");
    unreachable();
    return;
  }
  const body = await res.json().catch(() => ({ detail: `the inspector answered ${res.status}` }));
  if (res.status === 409 && body.duplicates) {
    const again = (choice) => () => importFile_(file, choice, { notice, unreachable });
    notice(`${file.name}: ${body.duplicates} of its ${body.total} capture(s) are here already (imported before?).`, [
      [`Skip those ${body.duplicates}`, again("skip")],
      ["Import all again", again("keep")],
    ]);
    return;
  }
  if (!res.ok) {
    notice(`Import failed: ${body.detail}`);
    return;
  }
  const skipped = body.skipped ? `, skipped ${body.skipped} already here` : "";
  notice(`Imported ${body.imported} capture(s) from ${file.name}${skipped}.`);
}
