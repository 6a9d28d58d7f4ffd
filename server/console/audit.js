// The audit log (admins): every operator write, newest first, a page at a time.
import { api, query } from './api.js';
import { errorBox, h, replace, showError, table, when } from './dom.js';

export function auditPage(page) {
  const operator = h('input', { type: 'text', name: 'operator_id', placeholder: 'any operator' });
  const error = errorBox('audit-error');
  const list = h('div', { 'data-testid': 'audit-list' });

  async function load(before) {
    showError(error, null);
    try {
      const entries = await api('GET', '/v1/admin/audit' + query({ operator_id: operator.value.trim(), before, limit: 50 }));
      replace(list,
        table([
          { title: 'When', cell: (e) => when(e.at_ms) },
          { title: 'Operator', cell: (e) => e.operator_name + ' (' + e.operator_id + ', ' + e.role + ')' },
          { title: 'Action', cell: (e) => e.action },
          { title: 'Target', cell: (e) => e.target },
          { title: 'Status', cell: (e) => String(e.status) },
          { title: 'From', cell: (e) => e.client },
        ], entries, { 'data-testid': 'audit-table' }),
        entries.length === 50
          ? h('button', { type: 'button', onclick: () => load(entries[entries.length - 1].id) }, 'Older')
          : null);
    } catch (e) {
      showError(error, e);
    }
  }
  const form = h('form', { class: 'card' }, h('h1', {}, 'Audit log'), h('div', { class: 'row' }, operator, h('button', { type: 'submit' }, 'Filter')), error);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    load();
  });
  replace(page, form, list);
  load();
}
