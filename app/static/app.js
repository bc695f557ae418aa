// Tyk Inspector dashboard: a live list fed by /api/stream and a detail view.
// Every value shown comes from the network: DOM is built with textContent only.

const tbody = document.querySelector("#captures tbody");
const detail = document.getElementById("detail");
const empty = document.getElementById("empty");
const connection = document.getElementById("connection");
let newestId = 0;

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text ?? "";
  return td;
}

function addRow(c) {
  const tr = document.createElement("tr");
  tr.dataset.id = c.id;
  const time = new Date(c.received_at * 1000).toLocaleTimeString();
  for (const v of [c.id, time, c.kind, c.hook_type, c.hook_name, c.api_id, c.method, c.path, c.status, c.size]) {
    tr.append(cell(v));
  }
  tr.addEventListener("click", () => select(c.id, tr));
  tbody.prepend(tr);
  empty.hidden = true;
}

async function select(id, tr) {
  for (const row of tbody.querySelectorAll("tr[aria-selected]")) row.removeAttribute("aria-selected");
  tr.setAttribute("aria-selected", "true");
  const res = await fetch(`/api/captures/${id}`);
  const pre = document.createElement("pre");
  pre.textContent = res.ok ? JSON.stringify(await res.json(), null, 2) : (await res.json()).detail;
  detail.replaceChildren(pre);
}

async function start() {
  const res = await fetch("/api/captures?limit=500");
  const page = await res.json();
  for (const c of page.items.reverse()) addRow(c);
  newestId = page.last_id;
  const source = new EventSource(`/api/stream?after=${newestId}`);
  source.addEventListener("open", () => { connection.dataset.state = "live"; connection.textContent = "live"; });
  source.addEventListener("error", () => { connection.dataset.state = "reconnecting"; connection.textContent = "reconnecting"; });
  source.addEventListener("capture", (e) => addRow(JSON.parse(e.data)));
  source.addEventListener("clear", () => { tbody.replaceChildren(); empty.hidden = false; });
}

start();
