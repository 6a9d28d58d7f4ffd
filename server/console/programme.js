// The programme's settings as JSON: shown to everyone, saved by admins; the server's validation
// message shows in place.
import { api } from './api.js';
import { errorBox, h, replace, showError } from './dom.js';

export async function programmePage(page, ctx) {
  const error = errorBox('programme-error');
  const saved = h('p', { class: 'ok', 'data-testid': 'programme-saved', hidden: true }, 'Saved.');
  replace(page, h('h1', {}, 'Programme'), error);
  let programme;
  try {
    programme = await api('GET', '/v1/admin/programme');
  } catch (e) {
    showError(error, e);
    return;
  }
  const text = h('textarea', { rows: 24, class: 'code', spellcheck: 'false', 'data-testid': 'programme-json' });
  text.value = JSON.stringify(programme, null, 2);
  const admin = ctx.session.role === 'admin';
  if (!admin) text.readOnly = true;
  const form = h('form', { class: 'card' }, h('h1', {}, 'Programme'), text,
    admin ? h('button', { type: 'submit', 'data-testid': 'programme-save' }, 'Save') : h('p', { class: 'muted' }, 'Only admins change the programme.'),
    error, saved);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    showError(error, null);
    saved.hidden = true;
    let body;
    try {
      body = JSON.parse(text.value);
    } catch (e) {
      showError(error, new Error('not JSON: ' + e.message));
      return;
    }
    try {
      await api('PUT', '/v1/admin/programme', body);
      saved.hidden = false;
    } catch (e) {
      showError(error, e);
    }
  });
  replace(page, form);
}
