// The live stream from /api/stream and the inspector's health: a banner when it stops answering,
// and, when it comes back as a new process (ids start over), a hand-off so the page keeps what it had.
import { button, text } from "./dom.js";

const RECONNECT_MS = 1000; // after a dropped stream; the server's buffer covers the gap
const PROBE_MAX_MS = 5000;
// Captures read per request when the stream skipped a range: small pieces keep each parse and
// each list update short while the page catches up.
const READ_BEHIND_PAGE = 1000;

/** Resolves when the page is visible again. */
function shownAgain() {
  return new Promise((resolve) => {
    const check = () => {
      if (document.visibilityState === "hidden") return;
      document.removeEventListener("visibilitychange", check);
      resolve();
    };
    document.addEventListener("visibilitychange", check);
  });
}

export class Connection {
  constructor({ pill, banner, lastId, onCapture, onGap, onClear, onRestart }) {
    this.pill = pill;
    this.banner = banner;
    this.lastId = lastId;
    this.handlers = { onCapture, onGap, onClear, onRestart };
    this.source = null;
    this.serverStarted = null; // when the inspector process started, by its own clock
    this.down = false;
    this.probing = false;
  }

  /** Remember which inspector process this page talks to (from /api/stats). */
  know(stats) {
    this.serverStarted = Date.now() / 1000 - stats.uptime_seconds;
  }

  connect() {
    this.setState("connecting", "connecting…");
    const source = new EventSource(`/api/stream?after=${this.lastId()}`);
    this.source = source;
    this.onSource?.(source); // others follow the stream's own events (the intercept's held and released)
    const live = () => { if (this.source === source) this.setState("live", "live"); };
    source.addEventListener("open", live);
    source.addEventListener("ready", live);
    // Each event carries a batch of summaries; its id is the newest capture's. Past the rate a page
    // can show, the server sends a batch's newest summaries and the range of the rest ("tail"): that
    // range is read through the API, one request at a time, and what arrives meanwhile follows it.
    // A hidden page (a tab in the background) leaves that range in the server's buffer until it is
    // shown again: reading it would have the inspector encode every capture for nobody to see.
    this.behind = null; // [from, to]: ids to read through the API before showing newer ones
    let cleared = 0; // ids up to this one were cleared on this stream: never read, shown or missed
    const show = (items) => items.forEach((c) => this.handlers.onCapture(c));
    const read = async (from, to) => {
      try {
        const res = await fetch(`/api/captures?after=${from - 1}&limit=${Math.min(READ_BEHIND_PAGE, to - from + 1)}`);
        return res.ok ? (await res.json()).items : null;
      } catch {
        return null;
      }
    };
    const readBehind = async () => {
      while (this.behind) {
        if (document.visibilityState === "hidden") await shownAgain();
        if (this.source !== source) return; // reconnected: the new stream resumes from lastId
        const to = this.behind[1];
        const from = Math.max(this.behind[0], cleared + 1);
        const got = from > to ? [] : await read(from, to);
        if (this.source !== source) return;
        if (got === null) {
          // Not read (the inspector is away, or the session ended): said like any failure, and
          // tried again; the range stays in the buffer meanwhile.
          this.reportFailure();
          await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
          continue;
        }
        const start = Math.max(from, cleared + 1); // a Clear may have come meanwhile
        const items = got.filter((c) => c.id >= start && c.id <= to);
        const first = items.length ? items[0].id : to + 1;
        if (first > start) this.handlers.onGap({ from: start, to: first - 1, missed: first - start });
        show(items);
        const reached = items.length ? items[items.length - 1].id : to; // none: evicted meanwhile
        this.behind = reached >= this.behind[1] ? null : [reached + 1, this.behind[1]];
      }
    };
    const batch = (e, items, skipped) => {
      if (this.behind) this.behind[1] = Number(e.lastEventId);
      else if (!skipped) show(items);
      else { this.behind = [skipped.from, Number(e.lastEventId)]; readBehind(); }
    };
    source.addEventListener("captures", (e) => batch(e, JSON.parse(e.data), null));
    source.addEventListener("tail", (e) => { const tail = JSON.parse(e.data); batch(e, tail.items, tail.skipped); });
    source.addEventListener("gap", (e) => this.handlers.onGap(JSON.parse(e.data)));
    source.addEventListener("clear", (e) => {
      const clear = JSON.parse(e.data);
      cleared = Math.max(cleared, clear.last_id);
      this.handlers.onClear(clear);
    });
    source.addEventListener("error", () => {
      if (this.source !== source) return;
      // Reconnects are ours, not EventSource's: a restarted inspector must be noticed before
      // the stream resumes (its ids start over), and a dead one gets a banner, not silence.
      source.close();
      this.source = null;
      this.setState("reconnecting", "reconnecting…");
      setTimeout(() => this.probe(), RECONNECT_MS);
    });
  }

  /** Something failed to reach the inspector: find out whether it is down. */
  reportFailure() {
    if (!this.probing) this.probe();
  }

  async probe(wait = RECONNECT_MS) {
    this.probing = true;
    let stats = null;
    try {
      const res = await fetch("/api/stats", { cache: "no-store" });
      if (res.ok) stats = await res.json();
    } catch {
      stats = null;
    }
    if (!stats) {
      this.showDown();
      setTimeout(() => this.probe(Math.min(wait * 2, PROBE_MAX_MS)), wait);
      return;
    }
    this.probing = false;
    const started = Date.now() / 1000 - stats.uptime_seconds;
    const restarted = (this.serverStarted !== null && started > this.serverStarted + 2) || stats.last_id < this.lastId();
    this.serverStarted = started;
    if (this.down) this.showUp();
    if (restarted) this.handlers.onRestart(stats);
    if (!this.source) this.connect();
  }

  showDown() {
    this.setState("down", "offline");
    if (this.down) return;
    this.down = true;
    this.banner.dataset.kind = "down";
    this.banner.replaceChildren(text("span",
      "The inspector is not answering. The list keeps what this page had; it reconnects by itself when the inspector is back."));
  }

  showUp() {
    this.down = false;
    this.banner.replaceChildren();
    delete this.banner.dataset.kind;
  }

  /** The banner's message after a restart, with its actions. */
  showRestarted(kept, onExport, onDiscard) {
    this.banner.dataset.kind = "restarted";
    const dismiss = () => { this.banner.replaceChildren(); delete this.banner.dataset.kind; };
    this.banner.replaceChildren(
      text("span", `The inspector restarted with an empty buffer. This page kept the ${kept} capture(s) it had.`),
      button("Export them", onExport, { id: "export-kept" }),
      button("Discard them", () => { onDiscard(); dismiss(); }),
      button("Dismiss", dismiss, { class: "link" }));
  }

  setState(state, label) {
    this.pill.dataset.state = state;
    this.pill.textContent = label;
  }
}
