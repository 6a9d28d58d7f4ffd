// Operator accounts (admins only; the server refuses everyone else): who they are, their role,
// when they were created and disabled; a new account's token is shown once, at creation, since the
// server keeps only its hash; disabling ends the account's sessions at their next request.
import { api } from './api.js';
import { errorBox, h, replace, showError, table, when } from './dom.js';

const ROLES = ['support', 'marketing', 'admin'];

export function operatorsPage(page, ctx) {
  const error = errorBox('operators-error');
  const list = h('div', { 'data-testid': 'operators-list' });
  const created = h('div', { 'data-testid': 'operator-created' });

  async function load() {
    try {
      const operators = await api('GET', '/v1/admin/operators');
      replace(list, table(columns(ctx, error, load), operators, { 'data-testid': 'operators-table' }));
    } catch (e) {
      showError(error, e);
    }
  }

  replace(page,
    h('section', { class: 'card' }, h('h1', {}, 'Operators'), error, list),
    createForm(created, load));
  load();
}

function columns(ctx, error, reload) {
  return [
    { title: 'Name', cell: (o) => h('span', { 'data-testid': 'operator-name' }, o.name) },
    { title: 'Role', cell: (o) => o.role },
    { title: 'Created', cell: (o) => when(o.created_at_ms) },
    { title: 'Disabled', cell: (o) => h('span', { 'data-testid': 'operator-disabled' }, o.disabled_at_ms ? when(o.disabled_at_ms) : '') },
    {
      title: '',
      cell: (o) => (o.disabled_at_ms || o.operator_id === ctx.session.operator_id ? '' : h('button', {
        type: 'button', 'data-testid': 'operator-disable',
        onclick: async () => {
          if (!window.confirm('Disable ' + o.name + '? Their token and open consoles stop working at once.')) return;
          showError(error, null);
          try {
            await api('POST', '/v1/admin/operators/' + encodeURIComponent(o.operator_id) + '/disable');
            reload();
          } catch (e) {
            showError(error, e);
          }
        },
      }, 'Disable')),
    },
  ];
}

function createForm(created, reload) {
  const name = h('input', { name: 'name', placeholder: 'Name, as the audit log shows it', required: true, maxlength: 100, 'data-testid': 'operator-new-name' });
  const role = h('select', { name: 'role', 'data-testid': 'operator-new-role' }, ROLES.map((r) => h('option', { value: r }, r)));
  const error = errorBox('operator-create-error');
  const form = h('form', { class: 'card', 'data-testid': 'operator-form' },
    h('h2', {}, 'New operator'),
    h('div', { class: 'row' }, name, role, h('button', { type: 'submit', 'data-testid': 'operator-create' }, 'Create')),
    error, created);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    showError(error, null);
    replace(created);
    try {
      const answer = await api('POST', '/v1/admin/operators', { name: name.value, role: role.value });
      name.value = '';
      replace(created, tokenCard(answer, () => replace(created)));
      created.scrollIntoView();
      reload();
    } catch (e) {
      showError(error, e);
    }
  });
  return form;
}

// The token, once: the page forgets it when dismissed or left, and the API never answers it again.
function tokenCard(answer, dismiss) {
  const token = h('code', { class: 'token', 'data-testid': 'operator-token' }, answer.token);
  return h('section', { class: 'card notice' },
    h('h2', {}, 'Token for ' + answer.operator.name + ' (' + answer.operator.role + ')'),
    h('p', {}, token),
    h('p', { class: 'error' }, 'Copy it now and hand it over safely: it will not be shown again. ',
      'The server keeps only its hash; a lost token means a new account.'),
    h('button', { type: 'button', 'data-testid': 'operator-token-done', onclick: dismiss }, 'I have copied it'));
}
