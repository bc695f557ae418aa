// "N new ↓": captures arrived while the list is scrolled away from the newest ones. A click (or
// scrolling there) shows them; in an order other than time the pill stays away (new rows land anywhere).

export class NewPill {
  /** `order()` -> "asc" (live order, newest at the bottom), "desc" (newest at the top) or null. */
  constructor(pill, list, order) {
    this.pill = pill;
    this.list = list;
    this.order = order;
    this.count = 0;
    pill.addEventListener("click", () => {
      const order = this.order();
      if (order) list.scrollToNewest(order === "desc");
      this.reset();
    });
    list.container.addEventListener("scroll", () => {
      if (this.count && this.atNewest()) this.reset();
    });
  }

  atNewest() {
    const order = this.order();
    return order === null || this.list.showsNewest(order === "desc");
  }

  /** `n` new rows were listed: count them when they are out of view. */
  added(n) {
    if (!n || this.atNewest()) return;
    this.count += n;
    const order = this.order();
    this.pill.textContent = `${this.count} new ${order === "desc" ? "↑" : "↓"}`;
    this.pill.title = `${this.count} capture(s) arrived since you scrolled away: show the newest`;
    this.pill.hidden = false;
  }

  reset() {
    this.count = 0;
    this.pill.hidden = true;
  }
}
