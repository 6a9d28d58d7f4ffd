// The liability report: points and money outstanding, and a chart of what expires within 30, 60
// and 90 days (Chart.js, vendored), with the CSV for a spreadsheet.
import { api } from './api.js';
import { errorBox, h, replace, showError, table } from './dom.js';

let chart = null;

export async function liabilityPage(page) {
  const error = errorBox('liability-error');
  replace(page, h('h1', {}, 'Points liability'), error);
  let report;
  try {
    report = await api('GET', '/v1/admin/reports/liability');
  } catch (e) {
    showError(error, e);
    return;
  }
  const rows = [
    { name: 'Available', v: report.available },
    { name: 'Pending', v: report.pending },
    { name: 'Total', v: report.total },
    ...report.expiring.map((x) => ({ name: 'Expiring within ' + x.days + ' days', v: x })),
  ];
  const canvas = h('canvas', { 'data-testid': 'expiring-chart', width: 600, height: 260, 'aria-label': 'Points expiring by 30, 60 and 90 days', role: 'img' });
  replace(page,
    h('section', { class: 'card' },
      h('h1', {}, 'Points liability'),
      h('p', { class: 'muted' }, report.members_with_points + ' members hold points; ',
        report.value_points + ' points are worth ' + report.value_minor + ' (minor units).'),
      table([
        { title: 'Measure', cell: (r) => r.name },
        { title: 'Points', cell: (r) => String(r.v.points) },
        { title: 'Value (minor units)', cell: (r) => String(r.v.value_minor) },
      ], rows, { 'data-testid': 'liability-table' }),
      h('p', {}, h('a', { href: '/v1/admin/reports/liability?format=csv', download: 'liability.csv', 'data-testid': 'liability-csv' }, 'Download CSV'))),
    h('section', { class: 'card chart' }, h('h2', {}, 'Expiring points'), canvas));
  drawChart(canvas, report.expiring);
}

function drawChart(canvas, expiring) {
  if (chart) chart.destroy();
  if (!window.Chart) return;
  chart = new window.Chart(canvas, {
    type: 'bar',
    data: {
      labels: expiring.map((x) => x.days + ' days'),
      datasets: [{ label: 'Points expiring', data: expiring.map((x) => x.points), backgroundColor: '#3b6ea5' }],
    },
    options: { animation: false, responsive: false, plugins: { legend: { display: false } } },
  });
}
