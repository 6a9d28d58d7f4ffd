// The fraud watch list: members and tills ranked by purchases, points redeemed, refunds or
// refused codes over the last 7, 30 or 90 days, with their refund rates and offline exceptions;
// the members with many live devices; the refused codes and offline exceptions by reason (a
// Chart.js bar chart and a table); and the CSV. A list to read, not a verdict.
import { api, query } from './api.js';
import { chartCanvas, COLOURS, COUNT_AXES, drawChart } from './charts.js';
import { csvLink, errorBox, h, percent, replace, showError, table, when } from './dom.js';

const DAY_MS = 86_400_000;
const ORDERS = [
  ['purchases', 'purchases'],
  ['redeemed', 'points redeemed'],
  ['refunds', 'refunds'],
  ['refused_codes', 'refused codes'],
];
const WINDOWS = [7, 30, 90];
/** The server's default window, asked for without from_ms/to_ms. */
const DEFAULT_DAYS = 7;

export function watchPage(page) {
  const by = h('select', { name: 'by', 'data-testid': 'watch-by' },
    ORDERS.map(([value, title]) => h('option', { value }, title)));
  const days = h('select', { name: 'days', 'data-testid': 'watch-days' },
    WINDOWS.map((d) => h('option', { value: d }, 'the last ' + d + ' days')));
  const error = errorBox('watch-error');
  const body = h('div', {});
  by.addEventListener('change', () => load());
  days.addEventListener('change', () => load());
  replace(page, h('section', { class: 'card' },
    h('h1', {}, 'Watch list'),
    h('div', { class: 'row' }, 'Rank by ', by, ' over ', days),
    h('p', { class: 'muted' }, 'Where to look first for abuse: a list to read, not a verdict. A busy family card or a refund desk tops it honestly.'),
    error), body);

  let latest = 0;
  // How far the server's clock is ahead of this browser's, from the last answer: the window ends
  // at the server's now (a till's and the reports' clock), not at a laptop's.
  let skew = 0;

  // Only the latest request draws (a choice changed twice quickly).
  async function load() {
    const mine = ++latest;
    showError(error, null);
    const params = { by: by.value, ...bounds(Number(days.value), skew) };
    const asked = Date.now();
    try {
      const list = await api('GET', '/v1/admin/reports/watch' + query(params));
      if (mine !== latest) return;
      if (params.to_ms === undefined) skew = list.to_ms - asked;
      draw(body, list, '/v1/admin/reports/watch' + query({ ...params, format: 'csv' }));
    } catch (e) {
      if (mine !== latest) return;
      showError(error, e);
      replace(body);
    }
  }
  load();
}

/** The window's bounds: none for the server's default, else `days` up to the server's now. */
function bounds(days, skew) {
  if (days === DEFAULT_DAYS) return {};
  const to = Date.now() + skew;
  return { from_ms: to - days * DAY_MS, to_ms: to };
}

function draw(body, list, csv) {
  const canvas = chartCanvas('watch-chart', 'Refused codes and offline exceptions by reason');
  const byReason = new Map();
  for (const r of list.refusals) byReason.set(r.reason, (byReason.get(r.reason) || 0) + r.count);
  replace(body,
    h('section', { class: 'card' },
      h('p', { class: 'muted', 'data-testid': 'watch-window' },
        'From ' + when(list.from_ms) + ' until ' + when(list.to_ms) + ' UTC, ranked by ' + title(list.by)),
      h('h2', {}, 'Members'),
      rows(list.members, memberColumns(), 'watch-members', 'No member has any ' + title(list.by) + ' in the window.'),
      h('h2', {}, 'Tills'),
      rows(list.tills, figureColumns({ title: 'Till', cell: (t) => h('span', { 'data-testid': 'watch-till' }, t.id) }),
        'watch-tills', 'No till has any ' + title(list.by) + ' in the window.'),
      h('h2', {}, 'Members with ' + list.min_devices + ' or more live devices'),
      rows(list.many_devices, [
        { title: 'Member', cell: (m) => memberLink(m.member_id, 'watch-device-member') },
        { title: 'Card number', cell: (m) => m.card_number },
        { title: 'Devices', cell: (m) => String(m.devices) },
      ], 'watch-devices', 'No member has that many devices.'),
      h('h2', {}, 'Refused codes and offline exceptions'),
      list.refusals.length ? canvas : null,
      rows(list.refusals, [
        { title: 'Source', cell: (r) => h('span', { 'data-testid': 'watch-refusal-source' }, r.source) },
        { title: 'Reason', cell: (r) => h('span', { 'data-testid': 'watch-refusal-reason' }, r.reason) },
        { title: 'Count', cell: (r) => h('span', { 'data-testid': 'watch-refusal-count' }, String(r.count)) },
      ], 'watch-refusals', 'Nothing was refused in the window.'),
      csvLink(csv, 'watch.csv', 'watch-csv')));
  if (!list.refusals.length) return;
  drawChart(canvas, {
    type: 'bar',
    data: {
      labels: [...byReason.keys()],
      datasets: [{ label: 'Refused', data: [...byReason.values()], backgroundColor: COLOURS[2] }],
    },
    options: { scales: COUNT_AXES, plugins: { legend: { display: false } } },
  });
}

function title(by) {
  const found = ORDERS.find(([value]) => value === by);
  return found ? found[1] : by;
}

/** A table of `items`, or a line saying there are none. */
function rows(items, columns, testid, none) {
  return items.length ? table(columns, items, { 'data-testid': testid })
    : h('p', { class: 'muted', 'data-testid': testid + '-none' }, none);
}

function memberLink(id, testid) {
  return h('a', { href: '#/members/' + encodeURIComponent(id), 'data-testid': testid }, id);
}

function memberColumns() {
  return [
    { title: 'Member', cell: (m) => memberLink(m.id, 'watch-member-link') },
    ...figureColumns({ title: 'Card number', cell: (m) => m.card_number || '' }),
  ];
}

/** `first`, then the figures every member and till row has. */
function figureColumns(first) {
  const figure = (key, name) => ({ title: name, cell: (r) => h('span', { 'data-testid': 'watch-' + key }, String(r[key])) });
  return [
    first,
    figure('purchases', 'Purchases'),
    figure('redemptions', 'Redeeming purchases'),
    figure('points_redeemed', 'Points redeemed'),
    figure('refunds', 'Refunds'),
    { title: 'Refund rate', cell: (r) => h('span', { 'data-testid': 'watch-refund_rate' }, percent(r.refund_rate)) },
    figure('refused_codes', 'Refused codes'),
    figure('offline_exceptions', 'Offline exceptions'),
  ];
}
