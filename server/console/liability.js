// The liability report: points and money outstanding, and a chart of what expires within 30, 60
// and 90 days (Chart.js, vendored), with the CSV for a spreadsheet.
import { api } from './api.js';
import { chartCanvas, COLOURS, COUNT_AXES, drawChart } from './charts.js';
import { csvLink, errorBox, h, replace, showError, table } from './dom.js';

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
  const canvas = chartCanvas('expiring-chart', 'Points expiring by 30, 60 and 90 days', 600, 260);
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
      csvLink('/v1/admin/reports/liability?format=csv', 'liability.csv', 'liability-csv')),
    h('section', { class: 'card chart' }, h('h2', {}, 'Expiring points'), canvas));
  drawExpiring(canvas, report.expiring);
}

function drawExpiring(canvas, expiring) {
  drawChart(canvas, {
    type: 'bar',
    data: {
      labels: expiring.map((x) => x.days + ' days'),
      datasets: [{ label: 'Points expiring', data: expiring.map((x) => x.points), backgroundColor: COLOURS[0] }],
    },
    options: { scales: COUNT_AXES, plugins: { legend: { display: false } } },
  });
}
