// The members report: the tier distribution (a Chart.js doughnut) and movement (who reached each tier,
// who is moving down, the moves from one tier to another), how many members there are, blocked, newly
// enrolled, active in the last 30 and 90 days, the repeat purchase rate, and the CSV.
import { api } from './api.js';
import { chartCanvas, COLOURS, drawChart } from './charts.js';
import { csvLink, errorBox, h, percent, replace, showError, table, when } from './dom.js';

export async function memberStatsPage(page) {
  const error = errorBox('memberstats-error');
  replace(page, h('h1', {}, 'Members report'), error);
  let report;
  try {
    report = await api('GET', '/v1/admin/reports/members');
  } catch (e) {
    showError(error, e);
    return;
  }
  const figures = [
    ['Members', report.members],
    ['Blocked', report.blocked],
    ['Enrolled in the last 30 days', report.enrolled_30d],
    ['Bought in the last 30 days', report.active_30d],
    ['Bought in the last 90 days', report.active_90d],
    ['Repeat purchase rate (90 days)', percent(report.repeat_rate_90d)],
  ];
  const canvas = chartCanvas('tiers-chart', 'Members per tier', 420, 300);
  replace(page,
    h('section', { class: 'card' },
      h('h1', {}, 'Members report'),
      h('p', { class: 'muted' }, 'As of ' + when(report.as_of_ms) + ' UTC.'),
      table([{ title: 'Measure', cell: (f) => f[0] }, { title: 'Value', cell: (f) => String(f[1]) }],
        figures, { 'data-testid': 'memberstats-table' }),
      csvLink('/v1/admin/reports/members?format=csv', 'members.csv', 'memberstats-csv')),
    h('section', { class: 'card chart' }, h('h2', {}, 'Tiers'), canvas,
      table([{ title: 'Tier', cell: (t) => t.tier }, { title: 'Members', cell: (t) => String(t.members) },
        { title: 'Reached it in 30 days', cell: (t) => String(t.entered_30d) },
        { title: 'Moving down', cell: (t) => String(t.downgrading) }],
      report.tiers, { 'data-testid': 'tiers-table' })),
    h('section', { class: 'card' }, h('h2', {}, 'Moves between tiers in the last 30 days'),
      report.tier_moves_30d.length === 0
        ? h('p', { class: 'muted', 'data-testid': 'tier-moves-none' }, 'Nobody changed tier in the last 30 days.')
        : table([{ title: 'From', cell: (m) => m.from }, { title: 'To', cell: (m) => m.to },
          { title: 'Moves', cell: (m) => String(m.moves) }],
        report.tier_moves_30d, { 'data-testid': 'tier-moves-table' })));
  drawChart(canvas, {
    type: 'doughnut',
    data: {
      labels: report.tiers.map((t) => t.tier),
      datasets: [{ data: report.tiers.map((t) => t.members), backgroundColor: report.tiers.map((_, i) => COLOURS[i % COLOURS.length]) }],
    },
  });
}
