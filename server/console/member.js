// The member's page: card number, balance, tier, the whole ledger a page at a time (reasons,
// rules, till and receipt), devices with when each was last seen (revoke), linked cards, offers,
// messages and requests; block/unblock (admins) and a points adjustment, whose refusal (a support
// operator over the limit, a debit beyond the balance) shows in place.
import { api, freshKey, query } from './api.js';
import { errorBox, h, replace, showError, table, when } from './dom.js';

const REASONS = ['goodwill', 'member_request', 'missing_receipt', 'correction', 'other'];

export async function memberPage(page, ctx, memberId) {
  const error = errorBox('member-error');
  replace(page, h('p', {}, 'Loading…'), error);
  let view;
  let requests = [];
  let ledger;
  let devices = [];
  try {
    const path = '/v1/admin/members/' + encodeURIComponent(memberId);
    [view, requests, ledger, devices] = await Promise.all([
      api('GET', path),
      api('GET', '/v1/admin/requests' + query({ member_id: memberId })).catch(() => []),
      api('GET', path + '/ledger'),
      api('GET', path + '/devices'),
    ]);
  } catch (e) {
    replace(page, h('h1', {}, 'Member'), error);
    showError(error, e);
    return;
  }
  draw(page, ctx, memberId, view, requests, ledger, devices);
}

function draw(page, ctx, memberId, view, requests, ledger, devices) {
  const card = view.card || {};
  const reload = () => memberPage(page, ctx, memberId);
  replace(page,
    h('a', { href: '#/members' }, '← Members'),
    h('section', { class: 'card', 'data-testid': 'member-card' },
      h('h1', {}, 'Card ', h('span', { 'data-testid': 'card-number' }, card.card_number || '(not projected yet)')),
      h('dl', { class: 'facts' },
        h('dt', {}, 'Balance'), h('dd', { 'data-testid': 'balance' }, String(card.balance ?? 0)),
        h('dt', {}, 'Tier'), h('dd', { 'data-testid': 'tier' }, card.tier || ''),
        h('dt', {}, 'Status'), h('dd', { 'data-testid': 'status' }, card.status || ''),
        h('dt', {}, 'Member id'), h('dd', {}, view.member_id)),
      blocking(ctx, memberId, card.status, reload)),
    adjustForm(ctx, memberId, reload),
    ledgerSection(memberId, ledger),
    devicesSection(ctx, devices, reload),
    section('Linked cards', 'linked-cards', view.cards || [], [
      { title: 'Card number', cell: (c) => c.card_number },
      { title: 'Status', cell: (c) => c.status },
      { title: 'Linked', cell: (c) => when(c.linked_at_ms) },
    ]),
    section('Offers', 'offers', view.offers || [], [
      { title: 'Title', cell: (o) => o.title },
      { title: 'Valid until', cell: (o) => when(o.valid_until_ms) },
    ]),
    section('Messages', 'messages', view.messages || [], [
      { title: 'Sent', cell: (m) => when(m.sent_at_ms) },
      { title: 'Channel', cell: (m) => m.channel },
      { title: 'Subject', cell: (m) => m.subject },
    ]),
    section('Requests', 'requests', requests, [
      { title: 'Opened', cell: (r) => when(r.opened_at_ms) },
      { title: 'Status', cell: (r) => r.status },
      { title: 'Subject', cell: (r) => h('span', { 'data-testid': 'request-subject' }, r.subject) },
    ]));
}

const LEDGER_COLUMNS = [
  { title: 'When', cell: (e) => when(e.at_ms) },
  { title: 'Points', cell: (e) => String(e.points) },
  { title: 'Reason', cell: (e) => e.reason + (e.available_at_ms > Date.now() ? ' (pending until ' + when(e.available_at_ms) + ')' : '') },
  { title: 'Rule', cell: (e) => e.rule || '' },
  { title: 'Till', cell: (e) => e.till_id },
  { title: 'Receipt', cell: (e) => e.receipt_id },
];

// The whole ledger, newest first; "Older" follows the page's cursor and appends the next page.
function ledgerSection(memberId, first) {
  const error = errorBox('ledger-error');
  const box = h('div', {}, first.entries.length ? table(LEDGER_COLUMNS, first.entries) : h('p', { class: 'muted' }, 'None.'));
  let next = first.next;
  const older = h('button', {
    type: 'button', 'data-testid': 'ledger-older', hidden: !next,
    onclick: async () => {
      try {
        const path = '/v1/admin/members/' + encodeURIComponent(memberId) + '/ledger';
        const page = await api('GET', path + query({ before: next }));
        box.append(table(LEDGER_COLUMNS, page.entries));
        next = page.next;
        older.hidden = !next;
      } catch (e) {
        showError(error, e);
      }
    },
  }, 'Older');
  return h('section', { class: 'card', 'data-testid': 'ledger' }, h('h2', {}, 'Ledger'), box, older, error);
}

// The member's devices; support and admins revoke a live one.
function devicesSection(ctx, devices, reload) {
  const error = errorBox('device-error');
  const mayRevoke = ['support', 'admin'].includes(ctx.session.role);
  const revoke = (d) => (!mayRevoke || d.revoked_at_ms ? '' : h('button', {
    type: 'button', 'data-testid': 'revoke-device',
    onclick: async () => {
      if (!window.confirm('Revoke ' + d.name + '? Its credentials and checkout key stop working at once.')) return;
      try {
        await api('POST', '/v1/admin/devices/' + encodeURIComponent(d.device_id) + '/revoke');
        reload();
      } catch (e) {
        showError(error, e);
      }
    },
  }, 'Revoke'));
  const columns = [
    { title: 'Name', cell: (d) => d.name },
    { title: 'Enrolled', cell: (d) => when(d.enrolled_at_ms) },
    { title: 'Last seen', cell: (d) => (d.last_seen_ms ? when(d.last_seen_ms) : 'never') },
    { title: 'Revoked', cell: (d) => (d.revoked_at_ms ? when(d.revoked_at_ms) : '') },
    { title: '', cell: revoke },
  ];
  return h('section', { class: 'card', 'data-testid': 'devices' }, h('h2', {}, 'Devices'),
    devices.length ? table(columns, devices) : h('p', { class: 'muted' }, 'None.'), error);
}

function section(title, testid, rows, columns) {
  return h('section', { class: 'card', 'data-testid': testid },
    h('h2', {}, title),
    rows.length ? table(columns, rows) : h('p', { class: 'muted' }, 'None.'));
}

function blocking(ctx, memberId, status, reload) {
  if (ctx.session.role !== 'admin') return null;
  const error = errorBox('block-error');
  const blocked = status === 'blocked';
  const action = blocked ? 'unblock' : 'block';
  return h('div', { class: 'row' },
    h('button', {
      type: 'button', 'data-testid': action,
      onclick: async () => {
        try {
          await api('POST', '/v1/admin/members/' + encodeURIComponent(memberId) + '/' + action);
          reload();
        } catch (e) {
          showError(error, e);
        }
      },
    }, blocked ? 'Unblock card' : 'Block card'),
    error);
}

function adjustForm(ctx, memberId, reload) {
  if (!['support', 'admin'].includes(ctx.session.role)) return null;
  const points = h('input', { type: 'number', name: 'points', required: true, step: 1, 'data-testid': 'adjust-points' });
  const reason = h('select', { name: 'reason', 'data-testid': 'adjust-reason' },
    REASONS.map((r) => h('option', { value: r }, r.replace('_', ' '))));
  const note = h('input', { type: 'text', name: 'note', required: true, maxlength: 200, 'data-testid': 'adjust-note', placeholder: 'What the member will read' });
  const reference = h('input', { type: 'text', name: 'reference', maxlength: 128, placeholder: 'Ticket or receipt (optional)' });
  const error = errorBox('adjust-error');
  const form = h('form', { class: 'card', 'data-testid': 'adjust-form' },
    h('h2', {}, 'Adjust points'),
    h('div', { class: 'row' }, points, reason, note, reference,
      h('button', { type: 'submit', 'data-testid': 'adjust-submit' }, 'Adjust')),
    error);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    showError(error, null);
    const body = {
      idempotency_key: freshKey('console'),
      points: Number(points.value),
      reason: reason.value,
      note: note.value,
    };
    if (reference.value.trim()) body.reference = reference.value.trim();
    try {
      await api('POST', '/v1/admin/members/' + encodeURIComponent(memberId) + '/adjustments', body);
      reload();
    } catch (e) {
      showError(error, e);
    }
  });
  return form;
}
