// A report's time window as the console asks for it: the server's default (no bounds sent), or a
// number of days up to the server's own now. The server's clock is the tills' and the reports'
// clock, not the laptop's, so how far it is ahead of this browser is learned from an answer that
// used the default (its `to_ms`) and applied to the windows asked for after.
import { h } from './dom.js';

const DAY_MS = 86_400_000;

export class ReportWindow {
  /** `choices`: [days, title] pairs; `defaultDays`: the one the server uses without bounds. */
  constructor(testid, choices, defaultDays) {
    this.defaultDays = defaultDays;
    this.skew = 0;
    this.select = h('select', { name: 'window', 'data-testid': testid },
      choices.map(([days, title]) => h('option', { value: days, selected: days === defaultDays }, title)));
  }

  /** The query's bounds for the chosen window, and the browser's time they were made at. */
  bounds() {
    const days = Number(this.select.value);
    const asked = Date.now();
    if (days === this.defaultDays) return { asked, params: {} };
    const to = asked + this.skew;
    return { asked, params: { from_ms: to - days * DAY_MS, to_ms: to } };
  }

  /** Learns the server's clock from an answer to a default window (`to_ms` is its now). */
  learn(bounds, toMs) {
    if (bounds.params.to_ms === undefined && Number.isFinite(toMs)) this.skew = toMs - bounds.asked;
  }
}
