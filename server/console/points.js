// The points activity report: what was earned, redeemed and expired per day, week or month (a
// Chart.js bar chart and a table with refunds and adjustments too), the window's redemption and
// breakage rates, and the CSV for a spreadsheet, over the last 90 days to ten years (the server's
// default: the last 365).
import { api, query } from './api.js';
import { chartCanvas, COLOURS, COUNT_AXES, drawChart } from './charts.js';
import { csvLink, day, errorBox, h, percent, replace, showError, table } from './dom.js';
import { ReportWindow } from './window.js';

const MEASURES = ['earned', 'redeemed', 'expired', 'refunded', 'adjusted'];
const CHARTED = ['earned', 'redeemed', 'expired'];
const WINDOWS = [
  [90, 'the last 90 days'], [365, 'the last 365 days'], [730, 'the last 2 years'],
  [1826, 'the last 5 years'], [3652, 'the last 10 years'],
];

export function pointsPage(page) {
  const period = h('select', { name: 'period', 'data-testid': 'points-period' },
    ['month', 'week', 'day'].map((p) => h('option', { value: p }, p)));
  const error = errorBox('points-error');
  const body = h('div', {});
  const range = new ReportWindow('points-window', WINDOWS, 365);
  for (const input of [period, range.select]) input.addEventListener('change', () => load());
  replace(page, h('section', { class: 'card' },
    h('h1', {}, 'Points activity'),
    h('div', { class: 'row' }, 'Per ', period, ' over ', range.select, h('span', { class: 'muted' }, '(UTC)')),
    error, body));

  let latest = 0;

  // Only the latest request draws (a period changed twice quickly).
  async function load() {
    const mine = ++latest;
    showError(error, null);
    const bounds = range.bounds();
    const params = { period: period.value, ...bounds.params };
    try {
      const report = await api('GET', '/v1/admin/reports/points' + query(params));
      if (mine !== latest) return;
      range.learn(bounds, report.to_ms);
      draw(body, report, '/v1/admin/reports/points' + query({ ...params, format: 'csv' }));
    } catch (e) {
      if (mine !== latest) return;
      showError(error, e);
      replace(body);
    }
  }
  load();
}

function draw(body, report, csv) {
  const canvas = chartCanvas('points-chart', 'Points earned, redeemed and expired per ' + report.period);
  const columns = [
    { title: 'Period from', cell: (r) => r.label },
    ...MEASURES.map((m) => ({ title: m[0].toUpperCase() + m.slice(1), cell: (r) => h('span', { 'data-testid': 'points-' + m }, String(r.points[m])) })),
  ];
  const rows = report.rows.map((r) => ({ label: day(r.start_ms), points: r }));
  rows.push({ label: 'Total', points: report.totals });
  replace(body,
    h('dl', { class: 'facts' },
      h('dt', {}, 'Redemption rate'), h('dd', { 'data-testid': 'redemption-rate' }, percent(report.redemption_rate)),
      h('dt', {}, 'Breakage rate'), h('dd', { 'data-testid': 'breakage-rate' }, percent(report.breakage_rate))),
    report.rows.length ? canvas : h('p', { class: 'muted' }, 'No points moved in the window.'),
    table(columns, rows, { 'data-testid': 'points-table' }),
    csvLink(csv, 'points.csv', 'points-csv'));
  if (!report.rows.length) return;
  drawChart(canvas, {
    type: 'bar',
    data: {
      labels: report.rows.map((r) => day(r.start_ms)),
      datasets: CHARTED.map((m, i) => ({ label: m, data: report.rows.map((r) => r[m]), backgroundColor: COLOURS[i] })),
    },
    options: { scales: COUNT_AXES },
  });
}
