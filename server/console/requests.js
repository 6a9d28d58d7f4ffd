// Members' requests: the list by status, each with its thread, and a reply (which may close it).
import { api, freshKey, query } from './api.js';
import { errorBox, h, replace, showError, when } from './dom.js';

export function requestsPage(page, ctx) {
  const status = h('select', { name: 'status', 'data-testid': 'requests-status' },
    ['open', 'answered', 'closed', ''].map((s) => h('option', { value: s }, s || 'any')));
  const error = errorBox('requests-error');
  const list = h('div', { 'data-testid': 'requests-list' });
  const canAnswer = ['support', 'admin'].includes(ctx.session.role);

  async function load() {
    showError(error, null);
    try {
      const found = await api('GET', '/v1/admin/requests' + query({ status: status.value }));
      replace(list, found.length ? found.map((r) => item(r, canAnswer, load)) : h('p', {}, 'No requests.'));
    } catch (e) {
      showError(error, e);
    }
  }
  status.addEventListener('change', load);
  replace(page, h('section', { class: 'card' }, h('h1', {}, 'Requests'), h('div', { class: 'row' }, 'Status ', status), error), list);
  load();
}

function item(r, canAnswer, reload) {
  return h('article', { class: 'card', 'data-testid': 'request' },
    h('h2', {}, h('span', { 'data-testid': 'request-subject' }, r.subject)),
    h('p', { class: 'muted' }, r.kind, ' · ', r.status, ' · opened ', when(r.opened_at_ms), ' · ',
      h('a', { href: '#/members/' + encodeURIComponent(r.member_id) }, 'member')),
    h('p', { class: 'body' }, r.body),
    (r.entries || []).map((e) => h('p', { class: 'entry' }, h('strong', {}, e.author || e.from || ''), ' ', e.body || '')),
    canAnswer && r.status !== 'closed' ? replyForm(r, reload) : null);
}

function replyForm(r, reload) {
  const body = h('textarea', { name: 'body', required: true, rows: 3, 'data-testid': 'reply-body' });
  const close = h('input', { type: 'checkbox', name: 'close', id: 'close-' + r.id });
  const error = errorBox('reply-error');
  const form = h('form', { 'data-testid': 'reply-form' },
    body,
    h('div', { class: 'row' }, close, h('label', { for: 'close-' + r.id }, 'Close the request'),
      h('button', { type: 'submit', 'data-testid': 'reply-submit' }, 'Reply')),
    error);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    showError(error, null);
    try {
      await api('POST', '/v1/admin/requests/' + encodeURIComponent(r.id) + '/replies',
        { id: freshKey('reply'), body: body.value, close: close.checked });
      reload();
    } catch (e) {
      showError(error, e);
    }
  });
  return form;
}
