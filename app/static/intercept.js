// Intercept: the query that holds the gateway's calls, the held calls with their countdown, and the
// editor whose outcome preview follows every keystroke (docs/intercept.md). A call being held never
// takes the focus: the counter and the list change, and `h` jumps to the oldest held call.
import { el, text } from "./dom.js";
import { isTyping } from "./keys.js";
import { outcomeTab } from "./outcome.js";

const $ = (id) => document.getElementById(id);

async function call(method, url, body) {
  const res = await fetch(url, {
    method,
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try { data = await res.json(); } catch { /* an empty or non-JSON answer */ }
  return { ok: res.ok, status: res.status, data };
}

/** Where a hook's body is: the response's for a Response hook, else the request's. */
function bodyOwner(obj, hookType) {
  return hookType === "Response" ? obj.response : obj.request;
}

/** A base64 raw_body as text when it is UTF-8, else "" (edit such a body in the JSON). */
function bodyText(base64) {
  if (!base64) return "";
  try {
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return "";
  }
}

export function installIntercept() {
  const form = $("intercept");
  if (!form) return { listen() {} };
  const held = new Map(); // id -> held call (as /api/held lists it), oldest first
  let selected = null; // the id in the editor
  let original = ""; // the editor's text as loaded: unchanged means "continue as it is"

  const counter = el("button", { id: "held-count", type: "button", class: "pill held-count", hidden: true,
    title: "Calls held by the intercept (h: the oldest)" });
  counter.addEventListener("click", () => jump());
  document.querySelector(".topbar .actions")?.prepend(counter);

  // --- the query ---------------------------------------------------------------------------------

  function showQuery(state) {
    form.elements.q.value = state.q;
    form.elements.before.checked = state.points.includes("before");
    form.elements.after.checked = state.points.includes("after");
    $("intercept-state").textContent = state.active
      ? `on: held ${state.held_total}, passed unheld ${state.passed_over}, each for up to ${state.timeout_seconds} s`
      : "off";
    form.dataset.active = String(state.active);
    // The rules file's mocks, after the presets.
    const select = $("held-preset");
    for (const option of [...select.querySelectorAll("option[data-mock]")]) option.remove();
    for (const name of state.mocks || []) select.append(el("option", { value: `mock:${name}`, "data-mock": name }, `mock: ${name}`));
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const points = ["before", "after"].filter((p) => form.elements[p].checked);
    const answer = await call("PUT", "/api/intercept", { q: form.elements.q.value, points });
    const error = $("intercept-error");
    error.hidden = answer.ok;
    error.textContent = answer.ok ? "" : (answer.data?.detail || `the inspector answered ${answer.status}`);
    if (answer.ok) showQuery(answer.data);
  });

  async function loadQuery() {
    const answer = await call("GET", "/api/intercept");
    if (answer.ok) showQuery(answer.data);
  }

  // --- the held calls ----------------------------------------------------------------------------

  function render() {
    counter.hidden = held.size === 0;
    counter.textContent = `${held.size} held`;
    $("held-panel").hidden = held.size === 0 && selected === null;
    const list = $("held-list");
    list.replaceChildren(...[...held.values()].map((h) => el("li", {
      role: "option", "data-id": h.id, "aria-selected": String(h.id === selected), class: "held-row",
      onclick: () => select(h.id),
    }, text("span", h.point, { class: `held-point pill` }), " ",
    text("span", `${h.hook_type} ${h.method} ${h.path}`, { class: "held-what" }), " ",
    text("span", "", { class: "held-left muted small", "data-expires": h.expires_at }))));
    tick();
  }

  function tick() {
    for (const span of document.querySelectorAll("#held-list .held-left")) {
      const left = Math.max(0, Number(span.dataset.expires) - Date.now() / 1000);
      span.textContent = `${Math.ceil(left)} s`;
    }
  }
  setInterval(() => { if (held.size) tick(); }, 500);

  async function refresh() {
    const answer = await call("GET", "/api/held");
    if (!answer.ok) return;
    held.clear();
    for (const h of answer.data.items) held.set(h.id, h);
    if (selected !== null && !held.has(selected)) gone(selected, "it is no longer held");
    render();
  }

  function gone(id, how) {
    if (id !== selected) return;
    $("held-title").textContent = `Call ${id} went on: ${how}.`;
    for (const b of document.querySelectorAll(".held-actions button, .held-fields button")) b.disabled = true;
    selected = null;
  }

  async function select(id) {
    const answer = await call("GET", `/api/held/${id}`);
    if (!answer.ok) { await refresh(); return; }
    selected = id;
    const h = answer.data;
    $("held-editor").hidden = false;
    $("held-title").textContent = `Held ${h.point} the plugin: ${h.hook_type} ${h.hook_name} — ${h.method} ${h.path}`;
    for (const b of document.querySelectorAll(".held-actions button, .held-fields button")) b.disabled = false;
    original = JSON.stringify(h.object, null, 2);
    $("held-object").value = original;
    $("held-body").value = bodyText(bodyOwner(h.object, h.hook_type)?.rawBody);
    setEditError(null);
    render();
    preview();
  }

  function jump() {
    const oldest = held.keys().next();
    if (oldest.done) return;
    select(oldest.value).then(() => $("held-list").querySelector(`[data-id='${oldest.value}']`)?.focus());
    $("held-list").focus();
  }

  // --- the editor and its preview ------------------------------------------------------------------

  function edited() {
    try {
      return JSON.parse($("held-object").value);
    } catch (err) {
      setEditError(`not JSON: ${err.message}`);
      return undefined;
    }
  }

  function setEditError(message) {
    const box = $("held-edit-error");
    box.textContent = message || "";
    box.hidden = !message;
  }

  // One preview on its way at a time; keystrokes meanwhile are gathered into the next one.
  let previewing = null;
  let changedMeanwhile = false;
  function preview() {
    if (previewing) { changedMeanwhile = true; return previewing; }
    previewing = (async () => {
      do {
        changedMeanwhile = false;
        await previewOnce();
      } while (changedMeanwhile);
    })().finally(() => { previewing = null; });
    return previewing;
  }

  async function previewOnce() {
    const id = selected;
    if (id === null) return;
    const reply = edited();
    if (reply === undefined) return;
    setEditError(null);
    const answer = await call("POST", "/api/outcome/preview", { held: id, reply });
    if (id !== selected || changedMeanwhile) return;
    const box = $("held-preview");
    if (!answer.ok) { setEditError(answer.data?.detail || `the inspector answered ${answer.status}`); return; }
    const h = held.get(id);
    const lead = h && h.point === "before"
      ? "If you Respond with this Object instead of asking the plugin server:"
      : "If you Continue with this Object:";
    const warnings = answer.data.warnings;
    box.replaceChildren(text("p", lead, { class: "muted small" }),
      outcomeTab({ outcome: answer.data.outcome, changes: [] }),
      warnings.length
        ? el("ul", { class: "held-warnings" }, warnings.map((w) => text("li", `${w.code}: ${w.message}`)))
        : text("p", "No lint warnings.", { class: "muted small" }));
    box.dataset.status = String(answer.data.outcome.status);
  }

  $("held-object").addEventListener("input", () => preview());

  // Fields in Tyk's terms: each changes the JSON as a plugin would change the Object.
  function change(edit) {
    const obj = edited();
    if (obj === undefined) return;
    obj.request = obj.request || {};
    if (edit(obj) === false) return;
    $("held-object").value = JSON.stringify(obj, null, 2);
    preview();
  }

  $("held-header-add").addEventListener("click", () => change((obj) => {
    const name = $("held-header-name").value.trim();
    if (!name) return false;
    obj.request.setHeaders = { ...(obj.request.setHeaders || {}), [name]: $("held-header-value").value };
    return true;
  }));
  $("held-header-delete").addEventListener("click", () => change((obj) => {
    const name = $("held-header-name").value.trim();
    if (!name) return false;
    obj.request.deleteHeaders = [...(obj.request.deleteHeaders || []).filter((h) => h !== name), name];
    return true;
  }));
  $("held-body-set").addEventListener("click", () => change((obj) => {
    const h = held.get(selected);
    const owner = h && h.hook_type === "Response" ? (obj.response = obj.response || {}) : obj.request;
    const bytes = new TextEncoder().encode($("held-body").value);
    owner.rawBody = btoa(Array.from(bytes, (b) => String.fromCharCode(b)).join(""));
    return true;
  }));
  $("held-override-set").addEventListener("click", () => change((obj) => {
    const code = Number($("held-override-code").value || 0);
    const overrides = { responseCode: code || -1 };
    const message = $("held-override-body").value;
    if (message) overrides.responseError = message;
    if ($("held-override-raw").checked) overrides.overrideError = true;
    obj.request.returnOverrides = overrides;
    return true;
  }));

  // --- actions -------------------------------------------------------------------------------------

  async function act(path, body) {
    const id = selected;
    if (id === null) return;
    const answer = await call("POST", `/api/held/${id}/${path}`, body);
    if (answer.ok) { gone(id, answer.data.how); held.delete(id); render(); return; }
    setEditError(answer.data?.detail || `the inspector answered ${answer.status}`);
    if (answer.status === 409) await refresh();
  }

  $("held-continue").addEventListener("click", () => {
    const text = $("held-object").value;
    if (text === original) { act("continue", {}); return; }
    const obj = edited();
    if (obj !== undefined) act("continue", { object: obj });
  });
  $("held-respond").addEventListener("click", () => {
    const choice = $("held-preset").value;
    act("respond", choice.startsWith("mock:") ? { mock: choice.slice(5) } : { preset: choice });
  });
  $("held-fail").addEventListener("click", () => act("fail", {
    code: $("held-fail-code").value, details: "failed from the inspector's intercept",
  }));
  $("held-continue-all").addEventListener("click", async () => { await call("POST", "/api/held/continue-all"); await refresh(); });

  document.addEventListener("keydown", (e) => {
    if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey || isTyping(e.target)) return;
    if (e.key === "h" && held.size) { e.preventDefault(); jump(); }
  });

  loadQuery();
  return {
    /** Follow the live stream's `held` and `released` events (the connection hands each new stream). */
    listen(source) {
      source.addEventListener("held", (e) => {
        const h = JSON.parse(e.data);
        held.set(h.id, h);
        render();
        loadQuery(); // the counts beside the box
      });
      source.addEventListener("released", (e) => {
        const r = JSON.parse(e.data);
        held.delete(r.id);
        gone(r.id, r.by ? `${r.how} by ${r.by}` : r.how);
        render();
      });
      // What was held while this page was away (or its stream lagged) is read again.
      source.addEventListener("ready", () => { refresh(); loadQuery(); });
    },
  };
}
