// The segments report: every segment's size at its latest recomputes with who joined and
// departed since the one before, and the members per RFM score (a Chart.js bar chart of the
// three dimensions side by side), how the scores moved at the latest recompute (a from → to table
// per dimension, each cell shaded by its share of the table's largest count: Chart.js has no
// heatmap, and a class per shade keeps the strict style policy), with the CSV.
import { api } from './api.js';
import { chartCanvas, COLOURS, COUNT_AXES, drawChart } from './charts.js';
import { csvLink, errorBox, h, replace, showError, table, when } from './dom.js';

const DIMENSIONS = [['recency', 'Recency'], ['frequency', 'Frequency'], ['monetary', 'Monetary']];

export async function rfmPage(page) {
  const error = errorBox('rfm-error');
  replace(page, h('h1', {}, 'Segments and RFM'), error);
  let report;
  try {
    report = await api('GET', '/v1/admin/reports/segments');
  } catch (e) {
    showError(error, e);
    return;
  }
  const canvas = chartCanvas('rfm-chart', 'Members per RFM score, by dimension');
  replace(page,
    h('section', { class: 'card' },
      h('h1', {}, 'Segments and RFM'),
      h('p', { class: 'muted' }, 'As of ' + when(report.as_of_ms) + ' UTC. Sizes as the batch job left them at each recompute.'),
      ...report.segments.map(segmentRuns),
      csvLink('/v1/admin/reports/segments?format=csv', 'segments.csv', 'rfm-csv')),
    h('section', { class: 'card chart' },
      h('h2', {}, 'RFM scores'),
      h('p', { class: 'muted' }, String(report.scored_members) + ' members bought in the window; score 0 is no purchase in it.'),
      canvas,
      table([{ title: 'Score', cell: (s) => String(s) },
        ...DIMENSIONS.map(([key, title]) => ({ title, cell: (s) => String(report[key].members[s]) }))],
      [0, 1, 2, 3, 4, 5], { 'data-testid': 'rfm-table' })),
    movesSection(report.rfm_moves));
  drawChart(canvas, {
    type: 'bar',
    data: {
      labels: ['0', '1', '2', '3', '4', '5'],
      datasets: DIMENSIONS.map(([key, title], i) => ({
        label: title, data: report[key].members, backgroundColor: COLOURS[i],
      })),
    },
    options: { scales: COUNT_AXES },
  });
}

function segmentRuns(segment) {
  return h('div', { 'data-testid': 'segment-runs-' + segment.segment_id },
    h('h2', {}, segment.name + ' (' + segment.segment_id + '): ' + segment.members + ' members'),
    segment.runs.length === 0
      ? h('p', { class: 'muted' }, 'Not computed yet.')
      : table([
        { title: 'Computed', cell: (r) => when(r.computed_at_ms) },
        { title: 'Members', cell: (r) => String(r.members) },
        { title: 'Joined', cell: (r) => '+' + r.joined },
        { title: 'Departed', cell: (r) => '-' + r.departed },
      ], segment.runs));
}

function movesSection(moves) {
  if (!moves) {
    return h('section', { class: 'card', 'data-testid': 'rfm-moves' },
      h('h2', {}, 'RFM score moves'),
      h('p', { class: 'muted' }, 'No recompute recorded yet.'));
  }
  const since = moves.previous_at_ms
    ? 'since the recompute of ' + when(moves.previous_at_ms) + ' UTC'
    : 'from the scores held before';
  return h('section', { class: 'card', 'data-testid': 'rfm-moves' },
    h('h2', {}, 'RFM score moves'),
    h('p', { class: 'muted' }, 'At the recompute of ' + when(moves.computed_at_ms) + ' UTC, ' + since
      + ': a row per previous score, a column per new score; 0 is no purchase in the window.'),
    h('div', { class: 'moves' },
      DIMENSIONS.map(([key, title]) => movesTable(key, title, moves[key].members))));
}

/**
 * One dimension's 6×6 table; a cell's class `heat-N` (0 to 5) is its count against the largest
 * other than 0 → 0, which stays unshaded: members who bought in neither window are most of a
 * programme and would wash out every move that matters.
 */
function movesTable(key, title, members) {
  const moved = members.flatMap((row, from) => row.filter((_, to) => from > 0 || to > 0));
  const largest = Math.max(1, ...moved);
  const shade = (n, from, to) =>
    (n > 0 && (from > 0 || to > 0) ? Math.max(1, Math.ceil((5 * n) / largest)) : 0);
  return h('table', { class: 'heat', 'data-testid': 'rfm-moves-' + key },
    h('caption', {}, title),
    h('thead', {}, h('tr', {}, h('th', {}, 'from \\ to'),
      [0, 1, 2, 3, 4, 5].map((to) => h('th', {}, String(to))))),
    h('tbody', {}, members.map((row, from) => h('tr', {},
      h('th', {}, String(from)),
      row.map((n, to) => h('td', {
        class: 'heat-' + shade(n, from, to),
        title: n + ' members from ' + from + ' to ' + to,
      }, String(n)))))));
}
