// The deliveries report: what became of the messages sent in a period (by default the server's
// last 30 days) or of one send, by channel, status and reason; a Chart.js bar chart of the counts
// by status, the deliveries refused for want of consent, and the CSV. For one send (typed in, or
// named by the route, #/reports/deliveries/<message id>, as the messages page links it) also its
// recipients, newest first, each linked to the member's page.
import { api, query } from './api.js';
import { chartCanvas, COLOURS, COUNT_AXES, drawChart } from './charts.js';
import { csvLink, dateMs, errorBox, h, replace, showError, table, when } from './dom.js';

const RECIPIENTS = 100;

export function deliveriesPage(page, ctx, messageId) {
  const from = h('input', { type: 'date', name: 'from', 'data-testid': 'deliveries-from' });
  const to = h('input', { type: 'date', name: 'to', 'data-testid': 'deliveries-to' });
  const message = h('input', { type: 'text', name: 'message_id', placeholder: 'one message id', maxlength: 64, value: messageId || '', 'data-testid': 'deliveries-message' });
  const error = errorBox('deliveries-error');
  const body = h('div', {});
  const form = h('form', { class: 'card', 'data-testid': 'deliveries-form' },
    h('h1', {}, 'Deliveries'),
    h('div', { class: 'row' }, h('label', {}, 'Sent from ', from), h('label', {}, 'before ', to),
      h('span', { class: 'muted' }, '(UTC; empty: the last 30 days) or'), message,
      h('button', { type: 'submit', 'data-testid': 'deliveries-submit' }, 'Show')),
    error);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    load();
  });
  replace(page, form, body);

  let latest = 0;

  // Only the latest request draws (a period changed twice quickly).
  async function load() {
    const mine = ++latest;
    showError(error, null);
    const one = message.value.trim();
    const params = one ? { message_id: one } : { from_ms: dateMs(from.value), to_ms: dateMs(to.value) };
    try {
      const report = await api('GET', '/v1/admin/reports/deliveries' + query(params));
      const recipients = one
        ? await api('GET', '/v1/admin/deliveries' + query({ message_id: one, limit: RECIPIENTS })) : null;
      if (mine !== latest) return;
      draw(body, report, '/v1/admin/reports/deliveries' + query({ ...params, format: 'csv' }));
      if (recipients) body.append(recipientsCard(recipients, report.recipients));
    } catch (e) {
      showError(error, e);
      replace(body);
    }
  }
  load();
}

function draw(body, report, csv) {
  const byStatus = new Map();
  for (const c of report.counts) byStatus.set(c.status, (byStatus.get(c.status) || 0) + c.count);
  const refused = report.counts
    .filter((c) => c.status === 'refused' && c.reason === 'no_consent')
    .reduce((n, c) => n + c.count, 0);
  const canvas = chartCanvas('deliveries-chart', 'Deliveries by status');
  const scope = report.message_id ? 'Message ' + report.message_id
    : 'Sends from ' + when(report.from_ms) + ' until ' + when(report.to_ms) + ' UTC';
  replace(body, h('section', { class: 'card' },
    h('p', { class: 'muted' }, scope),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Messages'), h('dd', { 'data-testid': 'deliveries-messages' }, String(report.messages)),
      h('dt', {}, 'Recipients'), h('dd', { 'data-testid': 'deliveries-recipients' }, String(report.recipients)),
      h('dt', {}, 'Refused: no consent'), h('dd', { 'data-testid': 'deliveries-no-consent' }, String(refused))),
    report.counts.length ? canvas : h('p', { class: 'muted' }, 'No deliveries.'),
    table([
      { title: 'Channel', cell: (c) => c.channel },
      { title: 'Status', cell: (c) => c.status },
      { title: 'Reason', cell: (c) => c.reason || '' },
      { title: 'Count', cell: (c) => String(c.count) },
    ], report.counts, { 'data-testid': 'deliveries-table' }),
    csvLink(csv, 'deliveries.csv', 'deliveries-csv')));
  if (!report.counts.length) return;
  drawChart(canvas, {
    type: 'bar',
    data: {
      labels: [...byStatus.keys()],
      datasets: [{ label: 'Deliveries', data: [...byStatus.values()], backgroundColor: COLOURS[0] }],
    },
    options: { scales: COUNT_AXES, plugins: { legend: { display: false } } },
  });
}

function recipientsCard(rows, total) {
  const shown = rows.length < total ? ' (the newest ' + rows.length + ' of ' + total + ')' : '';
  return h('section', { class: 'card' },
    h('h2', {}, 'Recipients' + shown),
    table([
      {
        title: 'Member',
        cell: (r) => h('a', { href: '#/members/' + encodeURIComponent(r.member_id), 'data-testid': 'delivery-member' }, r.member_id),
      },
      { title: 'Channel', cell: (r) => r.channel },
      { title: 'Kind', cell: (r) => r.kind },
      { title: 'Status', cell: (r) => h('span', { 'data-testid': 'delivery-status' }, r.status) },
      { title: 'Reason', cell: (r) => r.reason || '' },
      { title: 'In the inbox', cell: (r) => (r.in_inbox ? 'yes' : 'no') },
      { title: 'Attempts', cell: (r) => String(r.attempts) },
      { title: 'Updated', cell: (r) => when(r.updated_at_ms) },
    ], rows, { 'data-testid': 'delivery-recipients' }));
}
