// The login page: an operator token (a named account's `lop_…` token or the bootstrap token)
// traded for a session cookie.
import { api } from './api.js';
import { errorBox, h, replace, showError } from './dom.js';

export function loginPage(page, done) {
  const token = h('input', {
    type: 'password', id: 'token', name: 'token', autocomplete: 'off', required: true,
    'data-testid': 'login-token',
  });
  const error = errorBox('login-error');
  const form = h('form', { class: 'card narrow', 'data-testid': 'login-form' },
    h('h1', {}, 'Log in'),
    h('label', { for: 'token' }, 'Operator token'),
    token,
    h('button', { type: 'submit', 'data-testid': 'login-submit' }, 'Log in'),
    error);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    showError(error, null);
    try {
      done(await api('POST', '/console/session', { token: token.value }));
    } catch (e) {
      showError(error, e);
    }
  });
  replace(page, form);
  token.focus();
}
