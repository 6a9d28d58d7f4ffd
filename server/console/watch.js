// The fraud watch list: members and tills ranked by purchases, points redeemed, refunds or
// refused codes over the last 7, 30 or 90 days (the top 20 to 200), with their refund rates and
// offline exceptions; the members with many live devices (from a number the operator sets); the
// refused codes and offline exceptions by reason (a Chart.js bar chart and a table); and the CSV.
// A list to read, not a verdict.
import { api, query } from './api.js';
import { chartCanvas, COLOURS, COUNT_AXES, drawChart } from './charts.js';
import { csvLink, errorBox, h, percent, replace, showError, table, when } from './dom.js';
import { ReportWindow } from './window.js';

const ORDERS = [
  ['purchases', 'purchases'],
  ['redeemed', 'points redeemed'],
  ['refunds', 'refunds'],
  ['refused_codes', 'refused codes'],
];
/** The server's defaults: the last 7 days, the top 20, members with 3 live devices or more. */
const WINDOWS = [[7, 'the last 7 days'], [30, 'the last 30 days'], [90, 'the last 90 days']];
const LIMITS = [20, 50, 100, 200];
const MIN_DEVICES = 3;

export function watchPage(page) {
  const by = h('select', { name: 'by', 'data-testid': 'watch-by' },
    ORDERS.map(([value, title]) => h('option', { value }, title)));
  const range = new ReportWindow('watch-days', WINDOWS, 7);
  const limit = h('select', { name: 'limit', 'data-testid': 'watch-limit' },
    LIMITS.map((n) => h('option', { value: n }, 'the top ' + n)));
  const minDevices = h('input', {
    name: 'min_devices', type: 'number', min: 2, max: 1000, value: MIN_DEVICES, 'data-testid': 'watch-min-devices',
  });
  const error = errorBox('watch-error');
  const body = h('div', {});
  for (const input of [by, range.select, limit, minDevices]) input.addEventListener('change', () => load());
  replace(page, h('section', { class: 'card' },
    h('h1', {}, 'Watch list'),
    h('div', { class: 'row' }, 'Rank by ', by, ' over ', range.select, ', showing ', limit),
    h('div', { class: 'row' }, h('label', {}, 'Members with this many live devices or more: ', minDevices)),
    h('p', { class: 'muted' }, 'Where to look first for abuse: a list to read, not a verdict. A busy family card or a refund desk tops it honestly.'),
    error), body);

  let latest = 0;

  // Only the latest request draws (a choice changed twice quickly).
  async function load() {
    const mine = ++latest;
    showError(error, null);
    const bounds = range.bounds();
    const params = { by: by.value, limit: limit.value, min_devices: minDevices.value, ...bounds.params };
    try {
      const list = await api('GET', '/v1/admin/reports/watch' + query(params));
      if (mine !== latest) return;
      range.learn(bounds, list.to_ms);
      draw(body, list, '/v1/admin/reports/watch' + query({ ...params, format: 'csv' }));
    } catch (e) {
      if (mine !== latest) return;
      showError(error, e);
      replace(body);
    }
  }
  load();
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
